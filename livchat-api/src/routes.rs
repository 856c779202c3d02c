//! Every operation of core's registry as a REST route: its method, its path, and how a request
//! becomes the typed core request (path parameters, query parameters and the JSON body merged
//! into one object, then deserialized with the field named on failure). The OpenAPI document
//! is generated from this table and the registry's schemas, so the two cannot disagree.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::Method;
use futures::future::BoxFuture;
use livchat_core::Orchestrator;
use livchat_core::ops::{self, JobOperation, Operation, OperationInfo};
use serde_json::{Map, Value};

use crate::error::{ApiError, from_serde};

type RunFn = fn(Arc<Orchestrator>, Value) -> BoxFuture<'static, Result<Value, ApiError>>;
type PlanFn = fn(&Orchestrator, Value) -> Result<Value, ApiError>;

/// One REST route of one operation.
#[derive(Clone)]
pub struct Route {
    pub info: OperationInfo,
    pub method: Method,
    /// The path template; its `{placeholders}` are request fields of the same name.
    pub path: &'static str,
    pub run: RunFn,
    /// For job operations that can be planned (`?plan=true`).
    pub plan: Option<PlanFn>,
    /// The answer depends on the state file alone, so it is kept while the state does not
    /// change (`answers.rs`).
    pub by_state: bool,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.info.name)
    }
}

/// Where the fields that are not in the path come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    Query,
    Body,
}

impl Route {
    pub fn path_fields(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    pub fn rest(&self) -> Rest {
        if self.method == Method::GET || self.method == Method::DELETE {
            Rest::Query
        } else {
            Rest::Body
        }
    }

    /// Starts a job: answered 202 with `Location`, then spawned in this process.
    pub fn starts_job(&self) -> bool {
        self.info.job
    }
}

fn parse<O: Operation>(input: Value) -> Result<O, ApiError> {
    serde_path_to_error::deserialize(input).map_err(from_serde)
}

fn run<O: Operation>(
    orch: Arc<Orchestrator>,
    input: Value,
) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request: O = parse(input)?;
        let output = request.run(&orch).await?;
        serde_json::to_value(output).map_err(ApiError::internal)
    })
}

fn plan<O: JobOperation>(orch: &Orchestrator, input: Value) -> Result<Value, ApiError> {
    let request: O = parse(input)?;
    let plan = request.plan(orch)?;
    serde_json::to_value(plan).map_err(ApiError::internal)
}

fn quick<O: Operation>(method: Method, path: &'static str) -> Route {
    Route {
        info: O::INFO,
        method,
        path,
        run: run::<O>,
        plan: None,
        by_state: false,
    }
}

/// A read whose answer is computed from the state file alone.
fn by_state<O: Operation>(method: Method, path: &'static str) -> Route {
    Route {
        by_state: true,
        ..quick::<O>(method, path)
    }
}

fn job<O: JobOperation>(method: Method, path: &'static str) -> Route {
    Route {
        plan: Some(plan::<O>),
        ..quick::<O>(method, path)
    }
}

/// The route table: one entry per operation of the registry (checked by a test).
pub fn routes() -> Vec<Route> {
    use Method as M;
    use ops::*;
    vec![
        by_state::<ServerList>(M::GET, "/api/servers"),
        by_state::<ServerShow>(M::GET, "/api/servers/{server}"),
        job::<ServerCreate>(M::POST, "/api/servers"),
        quick::<ServerAdd>(M::POST, "/api/servers/add"),
        job::<ServerSetup>(M::POST, "/api/servers/{server}/setup"),
        job::<ServerDelete>(M::DELETE, "/api/servers/{server}"),
        job::<ServerJoin>(M::POST, "/api/servers/{server}/join"),
        job::<ServerLeave>(M::POST, "/api/servers/{server}/leave"),
        quick::<ServerExec>(M::POST, "/api/servers/{server}/exec"),
        quick::<ServerDnsUpdate>(M::PUT, "/api/servers/{server}/dns"),
        quick::<ServerSetPlatform>(M::PUT, "/api/servers/{server}/platform"),
        quick::<AppList>(M::GET, "/api/apps"),
        quick::<AppShow>(M::GET, "/api/apps/{app}"),
        quick::<AppRender>(M::POST, "/api/apps/{app}/render"),
        by_state::<AppDeployed>(M::GET, "/api/servers/{server}/apps"),
        // `/apps/status` would shadow an app named `status` in `/apps/{app}`.
        quick::<AppStatus>(M::GET, "/api/servers/{server}/status"),
        quick::<AppLogs>(M::GET, "/api/servers/{server}/apps/{app}/logs"),
        job::<AppDeploy>(M::POST, "/api/servers/{server}/apps"),
        job::<AppUndeploy>(M::DELETE, "/api/servers/{server}/apps/{app}"),
        quick::<JobList>(M::GET, "/api/jobs"),
        quick::<JobShow>(M::GET, "/api/jobs/{id}"),
        quick::<JobLogs>(M::GET, "/api/jobs/{id}/logs"),
        quick::<JobWait>(M::GET, "/api/jobs/{id}/wait"),
        quick::<JobCancel>(M::POST, "/api/jobs/{id}/cancel"),
        quick::<JobRetry>(M::POST, "/api/jobs/{id}/retry"),
        quick::<JobCleanup>(M::POST, "/api/jobs/cleanup"),
        quick::<ProviderInfoRequest>(M::GET, "/api/provider/{kind}"),
        quick::<DnsList>(M::GET, "/api/dns/{zone}/records"),
        quick::<SettingsGet>(M::GET, "/api/settings"),
        quick::<SettingsSet>(M::PUT, "/api/settings"),
        quick::<SecretNames>(M::GET, "/api/secrets"),
        quick::<SecretSet>(M::PUT, "/api/secrets/{name}"),
        quick::<SecretDelete>(M::DELETE, "/api/secrets/{name}"),
    ]
}

/// The JSON type a query parameter's text is converted to, read from the request's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Integer,
    Number,
    Boolean,
    Text,
}

/// The scalar kind of each top-level field of an operation's request.
pub fn field_kinds(info: &OperationInfo) -> BTreeMap<String, Scalar> {
    let root = serde_json::to_value((info.input_root)()).unwrap_or_default();
    let mut kinds = BTreeMap::new();
    if let Some(props) = root.get("properties").and_then(Value::as_object) {
        for (name, schema) in props {
            kinds.insert(name.clone(), scalar_of(&root, schema, 0));
        }
    }
    kinds
}

fn scalar_of(root: &Value, schema: &Value, depth: u8) -> Scalar {
    if depth > 8 {
        return Scalar::Text;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .unwrap_or(&Value::Null);
        return scalar_of(root, target, depth + 1);
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for (name, kind) in [
        ("integer", Scalar::Integer),
        ("number", Scalar::Number),
        ("boolean", Scalar::Boolean),
    ] {
        if types.contains(&name) {
            return kind;
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            for option in options {
                if option.get("type").and_then(Value::as_str) == Some("null") {
                    continue;
                }
                let kind = scalar_of(root, option, depth + 1);
                if kind != Scalar::Text {
                    return kind;
                }
            }
        }
    }
    Scalar::Text
}

/// Converts one query parameter's text to the JSON value its field expects.
pub fn query_value(field: &str, text: &str, kind: Scalar) -> Result<Value, ApiError> {
    let bad = |what: &str| ApiError::bad_input(field, format!("`{text}` is not {what}"));
    Ok(match kind {
        Scalar::Integer => {
            if let Ok(n) = text.parse::<u64>() {
                Value::from(n)
            } else {
                Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?)
            }
        }
        Scalar::Number => Value::from(text.parse::<f64>().map_err(|_| bad("a number"))?),
        Scalar::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        Scalar::Text => Value::String(text.to_string()),
    })
}

/// Merges path parameters, query parameters and the body into the request object.
pub fn request_object(
    route: &Route,
    kinds: &BTreeMap<String, Scalar>,
    path: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut object = Map::new();
    for (k, v) in path {
        object.insert(k, Value::String(v));
    }
    for (k, v) in query {
        if object.contains_key(&k) {
            return Err(ApiError::bad_input(
                &k,
                format!("`{k}` is given twice (path or query); give it once"),
            ));
        }
        let value = match kinds.get(&k) {
            Some(kind) => query_value(&k, &v, *kind)?,
            // Unknown: the request type's deny_unknown_fields names it.
            None => Value::String(v),
        };
        object.insert(k, value);
    }
    let body_is_empty = body.iter().all(u8::is_ascii_whitespace);
    if !body_is_empty {
        if route.rest() == Rest::Query {
            return Err(ApiError::bad_input(
                "body",
                format!(
                    "{} {} takes no body; give its fields as query parameters",
                    route.method, route.path
                ),
            ));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_input("body", format!("the body is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(ApiError::bad_input(
                "body",
                "the body must be a JSON object",
            ));
        };
        for (k, v) in fields {
            if object.contains_key(&k) {
                return Err(ApiError::bad_input(
                    &k,
                    format!("`{k}` is given in the path; leave it out of the body"),
                ));
            }
            object.insert(k, v);
        }
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_operation_of_the_registry_has_exactly_one_route() {
        let routes = routes();
        let routed: Vec<&str> = routes.iter().map(|r| r.info.name).collect();
        let unique: BTreeSet<&str> = routed.iter().copied().collect();
        assert_eq!(unique.len(), routed.len(), "an operation routed twice");
        let registry: BTreeSet<&str> = ops::operations().iter().map(|o| o.name).collect();
        assert_eq!(unique, registry);
    }

    #[test]
    fn path_placeholders_are_fields_of_the_request() {
        for route in routes() {
            let kinds = field_kinds(&route.info);
            for field in route.path_fields() {
                assert!(
                    kinds.contains_key(field),
                    "{route:?}: `{field}` is not a field of the request ({kinds:?})"
                );
            }
        }
    }

    #[test]
    fn job_operations_are_posted_or_deleted_and_plannable_when_they_create_work() {
        for route in routes() {
            if route.starts_job() {
                assert!(route.method == Method::POST || route.method == Method::DELETE);
            } else {
                assert!(route.plan.is_none(), "{route:?}");
            }
        }
    }

    #[test]
    fn query_text_becomes_the_type_the_schema_names() {
        assert_eq!(
            query_value("tail", "20", Scalar::Integer).unwrap(),
            Value::from(20)
        );
        let e = query_value("tail", "x", Scalar::Integer).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("tail"));
        assert_eq!(
            query_value("force", "true", Scalar::Boolean).unwrap(),
            Value::Bool(true)
        );
        assert!(query_value("force", "yes", Scalar::Boolean).is_err());
    }
}
