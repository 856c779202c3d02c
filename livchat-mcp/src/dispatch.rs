//! A tool call onto its core operation: the arguments become the operation's typed request
//! (serde, the same definitions the schemas come from), the MCP-only arguments (`plan`,
//! `confirm`, `max_wait_secs`) are taken out first, and the outcome is a value, a plan or a
//! started job. One thin generic function per kind of operation; the match below is the table.

use std::sync::Arc;

use livchat_core::model::CancellationToken;
use livchat_core::ops::{self, JobOperation, JobView, Operation, Plan};
use livchat_core::{CoreError, Orchestrator};
use rmcp::model::JsonObject;
use serde_json::Value;

use crate::catalog::{DEFAULT_MAX_WAIT_SECS, MAX_WAIT_CEILING_SECS, Shape};

/// The tools, in the order of the registry; `job_cleanup` stays a CLI/REST chore.
pub const TOOLS: &[&str] = &[
    "server_list",
    "server_show",
    "server_add",
    "server_create",
    "server_setup",
    "server_delete",
    "server_join",
    "server_leave",
    "server_exec",
    "server_dns_update",
    "server_set_platform",
    "app_list",
    "app_show",
    "app_render",
    "app_deploy",
    "app_undeploy",
    "app_deployed",
    "app_status",
    "app_logs",
    "job_list",
    "job_show",
    "job_logs",
    "job_wait",
    "job_cancel",
    "job_retry",
    "provider_info",
    "dns_list",
    "settings_get",
    "settings_set",
    "secret_names",
    "secret_set",
    "secret_delete",
];

pub fn exposed(name: &str) -> bool {
    TOOLS.contains(&name)
}

/// Why a call produced no result: the caller's input, or the core's refusal.
#[derive(Debug)]
pub enum Failure {
    /// Arguments that do not fit the request type.
    Input {
        field: String,
        message: String,
    },
    Core(CoreError),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

/// What a call produced.
#[derive(Debug)]
pub enum Outcome {
    Value(Value),
    /// Nothing was changed: `confirm_required` when only `confirm: true` would act.
    Plan {
        plan: Plan,
        confirm_required: bool,
    },
    /// A job recorded, queued, owned by this process: the handler spawns it.
    Job(JobView),
}

/// The MCP-only arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    pub plan: bool,
    pub confirm: bool,
    pub max_wait_secs: u64,
}

/// Takes the MCP-only arguments out of `args` (only those the tool declares: any other is left
/// for the request type to refuse as unknown).
pub fn extras(shape: &Shape, args: &mut JsonObject) -> Result<Extras, Failure> {
    let mut extras = Extras {
        max_wait_secs: DEFAULT_MAX_WAIT_SECS,
        ..Extras::default()
    };
    let flag = |args: &mut JsonObject, name: &str| match args.remove(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(Failure::Input {
            field: name.into(),
            message: format!("must be true or false, not {other}"),
        }),
    };
    if shape.plannable {
        extras.plan = flag(args, "plan")?;
    }
    if shape.destructive {
        extras.confirm = flag(args, "confirm")?;
    }
    if shape.long {
        match args.remove("max_wait_secs") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_WAIT_CEILING_SECS => extras.max_wait_secs = n,
                _ => {
                    return Err(Failure::Input {
                        field: "max_wait_secs".into(),
                        message: format!(
                            "must be a whole number of seconds, 0-{MAX_WAIT_CEILING_SECS}, not {v}"
                        ),
                    });
                }
            },
        }
    }
    Ok(extras)
}

/// The typed request, or the field that does not fit and what it expects.
pub fn parse<R: serde::de::DeserializeOwned>(args: JsonObject) -> Result<R, Failure> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // Root errors (missing or unknown field) name the field in serde's own message.
        let field = if path == "." {
            field_in(&message).unwrap_or_else(|| "arguments".into())
        } else {
            path
        };
        Failure::Input { field, message }
    })
}

/// The first back-quoted name in serde's message (`missing field `server``).
fn field_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

async fn read<O: Operation>(
    orch: &Arc<Orchestrator>,
    args: JsonObject,
) -> Result<Outcome, Failure> {
    let request: O = parse(args)?;
    let out = request.run(orch).await?;
    Ok(Outcome::Value(to_value(&out)?))
}

/// A change that is not a job: with `plan` (or, destructive, without `confirm`) it is
/// validated as a request and described, and nothing runs.
async fn change<O: Operation + Describe>(
    orch: &Arc<Orchestrator>,
    args: JsonObject,
    extras: Extras,
    destructive: bool,
) -> Result<Outcome, Failure> {
    let request: O = parse(args)?;
    let confirm_required = destructive && !extras.confirm;
    if extras.plan || confirm_required {
        return Ok(Outcome::Plan {
            plan: request.describe(orch)?,
            confirm_required,
        });
    }
    let out = request.run(orch).await?;
    Ok(Outcome::Value(to_value(&out)?))
}

async fn job<O: JobOperation>(
    orch: &Arc<Orchestrator>,
    args: JsonObject,
    extras: Extras,
    destructive: bool,
) -> Result<Outcome, Failure> {
    let request: O = parse(args)?;
    let confirm_required = destructive && !extras.confirm;
    if extras.plan || confirm_required {
        return Ok(Outcome::Plan {
            plan: request.plan(orch)?,
            confirm_required,
        });
    }
    Ok(Outcome::Job(request.run(orch).await?))
}

fn to_value<T: serde::Serialize>(out: &T) -> Result<Value, Failure> {
    serde_json::to_value(out)
        .map_err(|e| Failure::Core(CoreError::Refused(format!("cannot encode the result: {e}"))))
}

/// Runs tool `shape` with `args`. `ct` is the call's cancellation: it stops a `server_exec`
/// command in flight (jobs are cancelled by the handler, which knows their ids).
pub async fn call(
    orch: &Arc<Orchestrator>,
    shape: &Shape,
    mut args: JsonObject,
    ct: CancellationToken,
) -> Result<(Outcome, Extras), Failure> {
    let x = extras(shape, &mut args)?;
    let d = shape.destructive;
    let outcome = match shape.info.name {
        "server_list" => read::<ops::ServerList>(orch, args).await,
        "server_show" => read::<ops::ServerShow>(orch, args).await,
        "server_add" => change::<ops::ServerAdd>(orch, args, x, d).await,
        "server_create" => job::<ops::ServerCreate>(orch, args, x, d).await,
        "server_setup" => job::<ops::ServerSetup>(orch, args, x, d).await,
        "server_delete" => job::<ops::ServerDelete>(orch, args, x, d).await,
        "server_join" => job::<ops::ServerJoin>(orch, args, x, d).await,
        "server_leave" => job::<ops::ServerLeave>(orch, args, x, d).await,
        "server_exec" => {
            let request: ops::ServerExec = parse(args)?;
            if x.plan {
                Ok(Outcome::Plan {
                    plan: request.describe(orch)?,
                    confirm_required: false,
                })
            } else {
                let out = request.run_cancellable(orch, ct).await?;
                Ok(Outcome::Value(to_value(&out)?))
            }
        }
        "server_dns_update" => change::<ops::ServerDnsUpdate>(orch, args, x, d).await,
        "server_set_platform" => change::<ops::ServerSetPlatform>(orch, args, x, d).await,
        "app_list" => read::<ops::AppList>(orch, args).await,
        "app_show" => read::<ops::AppShow>(orch, args).await,
        "app_render" => read::<ops::AppRender>(orch, args).await,
        "app_deploy" => job::<ops::AppDeploy>(orch, args, x, d).await,
        "app_undeploy" => job::<ops::AppUndeploy>(orch, args, x, d).await,
        "app_deployed" => read::<ops::AppDeployed>(orch, args).await,
        "app_status" => read::<ops::AppStatus>(orch, args).await,
        "app_logs" => read::<ops::AppLogs>(orch, args).await,
        "job_list" => read::<ops::JobList>(orch, args).await,
        "job_show" => read::<ops::JobShow>(orch, args).await,
        "job_logs" => read::<ops::JobLogs>(orch, args).await,
        "job_wait" => read::<ops::JobWait>(orch, args).await,
        "job_cancel" => change::<ops::JobCancel>(orch, args, x, d).await,
        "job_retry" => {
            let request: ops::JobRetry = parse(args)?;
            if x.plan {
                Ok(Outcome::Plan {
                    plan: request.describe(orch)?,
                    confirm_required: false,
                })
            } else {
                Ok(Outcome::Job(request.run(orch).await?))
            }
        }
        "provider_info" => read::<ops::ProviderInfoRequest>(orch, args).await,
        "dns_list" => read::<ops::DnsList>(orch, args).await,
        "settings_get" => read::<ops::SettingsGet>(orch, args).await,
        "settings_set" => change::<ops::SettingsSet>(orch, args, x, d).await,
        "secret_names" => read::<ops::SecretNames>(orch, args).await,
        "secret_set" => change::<ops::SecretSet>(orch, args, x, d).await,
        "secret_delete" => change::<ops::SecretDelete>(orch, args, x, d).await,
        other => Err(Failure::Input {
            field: "name".into(),
            message: format!("no tool `{other}`"),
        }),
    }?;
    Ok((outcome, x))
}

/// The plan of a change that is not a job: the request already passed its type's checks; the
/// cheap state checks (does the server, job or secret exist) run here, nothing is changed.
trait Describe {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError>;
}

fn plan(operation: String, steps: &[&str], resources: Vec<String>) -> Plan {
    Plan {
        operation,
        steps: steps.iter().map(|s| (*s).to_string()).collect(),
        resources,
        dns_records: Vec::new(),
        stacks: Vec::new(),
    }
}

impl Describe for ops::ServerAdd {
    fn describe(&self, _orch: &Orchestrator) -> Result<Plan, CoreError> {
        let target = format!(
            "{}@{}:{}",
            self.user.as_deref().unwrap_or("root"),
            self.host,
            self.port.unwrap_or(22)
        );
        Ok(plan(
            format!("server add {}", self.name),
            &["connect over SSH", "pin the host key", "record the server"],
            vec![
                format!("state server {} ({target})", self.name),
                format!(
                    "vault secret {}",
                    livchat_core::orchestrator::ssh_key_secret(&self.name)
                ),
            ],
        ))
    }
}

impl Describe for ops::ServerExec {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        orch.server(&self.server)?;
        Ok(plan(
            format!("server exec {}", self.server),
            &["run the program over SSH (no shell)"],
            vec![format!("argv {:?}", self.argv)],
        ))
    }
}

impl Describe for ops::ServerSetPlatform {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        orch.server(&self.server)?;
        Ok(plan(
            format!("server set-platform {}", self.server),
            &["record the setting"],
            vec![format!(
                "state server {} platform {} (deployed apps keep the path that deployed them)",
                self.server,
                self.platform.as_str()
            )],
        ))
    }
}

impl Describe for ops::ServerDnsUpdate {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        let server = orch.server(&self.server)?;
        let name = match &self.subdomain {
            Some(sub) => format!("{}.{sub}.{}", self.server, self.zone),
            None => format!("{}.{}", self.server, self.zone),
        };
        let mut p = plan(
            format!("server dns update {}", self.server),
            &["create or update the A record", "record the zone"],
            vec![format!(
                "state server {} dns zone {}",
                self.server, self.zone
            )],
        );
        p.dns_records.push(format!("A {name} -> {}", server.host));
        Ok(p)
    }
}

impl Describe for ops::JobCancel {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        orch.jobs().get(&self.id)?;
        Ok(plan(
            format!("job cancel {}", self.id),
            &["cancel the job"],
            vec![],
        ))
    }
}

impl Describe for ops::JobRetry {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        let job = orch.jobs().get(&self.id)?;
        let mut steps = vec![job.current_step.clone().unwrap_or_default()];
        steps.retain(|s| !s.is_empty());
        steps.extend(job.steps_remaining.iter().cloned());
        Ok(Plan {
            operation: format!("job retry {}", self.id),
            steps,
            resources: vec![],
            dns_records: vec![],
            stacks: vec![],
        })
    }
}

impl Describe for ops::SettingsSet {
    fn describe(&self, _orch: &Orchestrator) -> Result<Plan, CoreError> {
        Ok(plan(
            format!("settings set {}", self.key),
            &["write state.json"],
            vec![format!("setting {} = {}", self.key, self.value)],
        ))
    }
}

impl Describe for ops::SecretSet {
    fn describe(&self, _orch: &Orchestrator) -> Result<Plan, CoreError> {
        Ok(plan(
            format!("secrets set {}", self.name),
            &["write the vault"],
            vec![format!("vault secret {} (value not shown)", self.name)],
        ))
    }
}

impl Describe for ops::SecretDelete {
    fn describe(&self, orch: &Orchestrator) -> Result<Plan, CoreError> {
        if !orch.secret_names()?.contains(&self.name) {
            return Err(CoreError::not_found("secret", self.name.clone()));
        }
        Ok(plan(
            format!("secrets delete {}", self.name),
            &["write the vault"],
            vec![format!("vault secret {} (deleted)", self.name)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    fn input_failure(r: Result<impl std::fmt::Debug, Failure>) -> (String, String) {
        match r {
            Err(Failure::Input { field, message }) => (field, message),
            other => panic!("expected an input failure, got {other:?}"),
        }
    }

    #[test]
    fn a_mistyped_field_is_named_with_what_it_expects() {
        let (field, message) = input_failure(parse::<ops::ServerExec>(args(serde_json::json!({
            "server": "web-1", "argv": "rm -rf /"
        }))));
        assert_eq!(field, "argv");
        assert!(message.contains("expected a sequence"), "{message}");
        let (field, _) = input_failure(parse::<ops::ServerExec>(args(serde_json::json!({
            "server": "web-1", "argv": ["ls", 7]
        }))));
        assert_eq!(field, "argv[1]");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let (field, _) = input_failure(parse::<ops::ServerShow>(JsonObject::new()));
        assert_eq!(field, "server");
        let (field, message) = input_failure(parse::<ops::ServerShow>(args(serde_json::json!({
            "server": "web-1", "shell": "sh"
        }))));
        assert_eq!(field, "shell");
        assert!(message.contains("expected"), "{message}");
    }

    /// The MCP side of the frontends' parity (the CLI's is `livchat-cli/tests/parity.rs`, the
    /// REST one `routes::tests`): a new operation of the registry fails here until it is a
    /// tool or is left out on purpose.
    #[test]
    fn every_operation_of_the_registry_is_a_tool_but_job_cleanup_in_registry_order() {
        let registry: Vec<&str> = ops::operations()
            .iter()
            .map(|o| o.name)
            .filter(|name| *name != "job_cleanup")
            .collect();
        assert_eq!(TOOLS, registry.as_slice());
    }

    #[test]
    fn mcp_arguments_are_taken_only_where_the_tool_declares_them() {
        let info = ops::operation("server_show").unwrap();
        let shape = Shape::of(info);
        let mut a = args(serde_json::json!({"server": "web-1", "plan": true}));
        let x = extras(&shape, &mut a).unwrap();
        assert!(!x.plan);
        // Left in place, so the request type refuses it as unknown.
        assert!(a.contains_key("plan"));

        let shape = Shape::of(ops::operation("server_delete").unwrap());
        let mut a =
            args(serde_json::json!({"server": "web-1", "confirm": true, "max_wait_secs": 5}));
        let x = extras(&shape, &mut a).unwrap();
        assert!(x.confirm && !x.plan);
        assert_eq!(x.max_wait_secs, 5);
        assert_eq!(a.len(), 1);

        let mut a = args(serde_json::json!({"server": "web-1", "confirm": "yes"}));
        let (field, _) = input_failure(extras(&shape, &mut a));
        assert_eq!(field, "confirm");
        let mut a = args(serde_json::json!({"server": "web-1", "max_wait_secs": -1}));
        let (field, _) = input_failure(extras(&shape, &mut a));
        assert_eq!(field, "max_wait_secs");
    }
}
