//! Reading what `docker` prints: one JSON object per line (`--format '{{json .}}'`), parsed
//! into the platform's statuses (services, tasks, updates) and merged logs.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NetworkLine {
    pub(super) driver: String,
    pub(super) scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NamedLine {
    pub(super) name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ContainerLine {
    #[serde(rename = "ID")]
    pub(super) id: String,
}

/// A line of `docker stack services --format '{{json .}}'`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceLine {
    pub(super) name: String,
    pub(super) image: String,
    pub(super) mode: String,
    pub(super) replicas: String,
}

/// A line of `docker stack ps --no-trunc --format '{{json .}}'`; newest task first per slot.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaskLine {
    #[serde(rename = "ID")]
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) desired_state: String,
    pub(super) current_state: String,
    #[serde(default)]
    pub(super) error: String,
    #[serde(default)]
    pub(super) node: String,
}

/// What `docker service inspect` says of a service that health needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceInspect {
    pub(super) spec: ServiceSpecJson,
    #[serde(default)]
    pub(super) previous_spec: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) update_status: Option<UpdateStatusJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceSpecJson {
    pub(super) name: String,
    #[serde(default)]
    pub(super) task_template: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateStatusJson {
    #[serde(default)]
    pub(super) state: String,
    #[serde(default)]
    pub(super) message: String,
}

impl UpdateStatusJson {
    pub(super) fn state(&self) -> UpdateState {
        UpdateState::parse(&self.state)
    }
}

/// What `docker inspect --type task` says of a task that health needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaskInspect {
    #[serde(rename = "ID")]
    pub(super) id: String,
    #[serde(default)]
    pub(super) spec: serde_json::Value,
}

/// Whether a task was created from this task template. The task's spec is a copy of the
/// template it was created from, but `docker service inspect` shows the template with the
/// engine's defaults filled in (`StopGracePeriod`, `RestartPolicy.Delay`, `Runtime`,
/// `DNSConfig: {}`...) where the task keeps what was given: so every non-empty value of the
/// task must be in the template, and what only the template has is taken as a default.
/// Placement is left out (the swarm keeps a task whose node still satisfies it). The one
/// case this cannot tell apart, a new version that only adds a field, is covered by the
/// update state: a service does not converge while its update is under way.
pub(super) fn same_spec(task: &serde_json::Value, template: &serde_json::Value) -> bool {
    use serde_json::Value;
    fn normal(v: &Value) -> Option<Value> {
        match v {
            Value::Null | Value::Bool(false) => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(n) if n.as_f64() == Some(0.0) => None,
            Value::Array(items) => {
                let items: Vec<Value> = items.iter().filter_map(normal).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(map) => {
                let map: serde_json::Map<String, Value> = map
                    .iter()
                    .filter(|(k, _)| k.as_str() != "Placement")
                    .filter_map(|(k, v)| normal(v).map(|v| (k.clone(), v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            other => Some(other.clone()),
        }
    }
    fn within(task: &Value, template: &Value) -> bool {
        match (task, template) {
            (Value::Object(t), Value::Object(s)) => t
                .iter()
                .all(|(k, v)| s.get(k).is_some_and(|w| within(v, w))),
            (t, s) => t == s,
        }
    }
    match (normal(task), normal(template)) {
        (Some(t), Some(s)) => within(&t, &s),
        (t, s) => t == s,
    }
}

pub(super) fn parse_json_lines<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<T>, PlatformError> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| PlatformError::Parse {
                what: what.to_string(),
                reason: format!("{e} in {l:?}"),
            })
        })
        .collect()
}

/// `"1/2"`, `"0/1 (max 1 per node)"`, `"1/1 (1/1 completed)"` -> (running, desired).
pub(super) fn parse_replicas(text: &str) -> Option<(u64, u64)> {
    let head = text.split_whitespace().next()?;
    let (running, desired) = head.split_once('/')?;
    Some((running.parse().ok()?, desired.parse().ok()?))
}

/// The task's service: `app_db.1` (replicated) or `app_db.<node id>` (global).
pub(super) fn task_service(task_name: &str) -> &str {
    let name = task_name.trim_start_matches(['\\', '_', ' ']);
    name.rsplit_once('.').map_or(name, |(service, _)| service)
}

pub(super) fn is_failure(state: &str) -> bool {
    state.starts_with("Failed") || state.starts_with("Rejected")
}

/// States a replacement task passes through before it runs; they do not end a failure streak.
pub(super) fn is_in_progress(state: &str) -> bool {
    [
        "New",
        "Pending",
        "Assigned",
        "Accepted",
        "Preparing",
        "Ready",
        "Starting",
    ]
    .iter()
    .any(|s| state.starts_with(s))
}

pub(super) fn build_status(
    stack: &str,
    services: &[ServiceLine],
    tasks: &[TaskLine],
    inspected: &[ServiceInspect],
    task_specs: &[TaskInspect],
) -> Result<StackStatus, PlatformError> {
    let specs: BTreeMap<&str, &serde_json::Value> = task_specs
        .iter()
        .map(|t| (t.id.as_str(), &t.spec))
        .collect();
    // Per service and slot, tasks newest first (docker's own order).
    let mut slots: BTreeMap<(&str, &str), Vec<&TaskLine>> = BTreeMap::new();
    for task in tasks {
        let name = task.name.trim_start_matches(['\\', '_', ' ']);
        let service = task_service(name);
        let slot = name.rsplit_once('.').map_or("", |(_, slot)| slot);
        slots.entry((service, slot)).or_default().push(task);
    }
    let prefix = format!("{stack}_");
    let mut out = Vec::with_capacity(services.len());
    for line in services {
        let (_, desired) = parse_replicas(&line.replicas).ok_or_else(|| PlatformError::Parse {
            what: "docker stack services".into(),
            reason: format!("replicas {:?} of {}", line.replicas, line.name),
        })?;
        let inspect = inspected.iter().find(|i| i.spec.name == line.name);
        // A task of an older spec (before an update, or the version an update replaced) says
        // nothing about the current one. A task the inspection missed counts as current.
        let is_current = |task: &TaskLine| match (specs.get(task.id.as_str()), inspect) {
            (Some(spec), Some(service)) => same_spec(spec, &service.spec.task_template),
            _ => true,
        };
        let mut running = 0;
        let mut nodes = Vec::new();
        let mut failed_tasks = 0;
        let mut last_error = None;
        for (_, history) in slots.iter().filter(|((s, _), _)| *s == line.name) {
            let current: Vec<&TaskLine> =
                history.iter().copied().filter(|t| is_current(t)).collect();
            for t in current
                .iter()
                .filter(|t| t.desired_state == "Running" && t.current_state.starts_with("Running"))
            {
                running += 1;
                if !t.node.is_empty() && !nodes.contains(&t.node) {
                    nodes.push(t.node.clone());
                }
            }
            // Failures since the slot last ran: after a recovery, older failures stay in the
            // history but say nothing about the current state.
            let streak = current
                .iter()
                .filter(|t| !is_in_progress(&t.current_state))
                .take_while(|t| is_failure(&t.current_state))
                .count();
            failed_tasks = failed_tasks.max(streak);
            if last_error.is_none() {
                last_error = current
                    .iter()
                    .map(|t| t.error.trim().trim_matches('"').trim())
                    .find(|e| !e.is_empty())
                    .map(str::to_string);
            }
        }
        out.push(ServiceStatus {
            name: line
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&line.name)
                .to_string(),
            full_name: line.name.clone(),
            image: line.image.clone(),
            mode: if line.mode.starts_with("global") {
                ServiceMode::Global
            } else {
                ServiceMode::Replicated
            },
            desired_replicas: desired,
            running_replicas: running,
            failed_tasks,
            last_error,
            nodes,
            update: inspect
                .and_then(|i| i.update_status.as_ref())
                .filter(|u| !u.state.is_empty())
                .map(|u| UpdateStatus {
                    state: u.state(),
                    message: u.message.clone(),
                }),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StackStatus {
        name: stack.to_string(),
        services: out,
    })
}

/// Merges `docker service logs --raw --timestamps` stdout and stderr in time order and keeps
/// the last `tail` lines, without their timestamps.
pub(super) fn merge_logs(stdout: &[u8], stderr: &[u8], tail: usize) -> Vec<String> {
    let mut lines: Vec<(String, String)> = String::from_utf8_lossy(stdout)
        .lines()
        .chain(String::from_utf8_lossy(stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' => {
                (ts.to_string(), rest.to_string())
            }
            _ => (String::new(), l.to_string()),
        })
        .collect();
    // RFC 3339 timestamps of one clock sort as text.
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = lines.len().saturating_sub(tail);
    lines.into_iter().skip(skip).map(|(_, l)| l).collect()
}
