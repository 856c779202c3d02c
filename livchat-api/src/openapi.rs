//! The OpenAPI 3.1 document, generated from the route table and the JSON Schemas core derives
//! for every request and output (one schemars generator, definitions under
//! `#/components/schemas`). Nothing here is written by hand per operation: a new operation in
//! the registry gets its path, parameters, body and responses from its types.

use livchat_core::ops::{JobView, OperationInfo, Plan};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::error::ErrorBody;
use crate::routes::{Rest, Route};
use crate::service::{Health, SystemInfo};

const COMPONENTS: &str = "/components/schemas";

fn reference<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// The request's own definition (its `$ref` resolved), to split into parameters and body.
fn request_definition(info: &OperationInfo, generator: &mut SchemaGenerator) -> Value {
    let schema = (info.input_schema)(generator).to_value();
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            generator
                .definitions()
                .get(name)
                .cloned()
                .unwrap_or(Value::Null)
        }
        None => schema,
    }
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error_responses(responses: &mut Map<String, Value>, codes: &[(&str, &str)]) {
    for (code, description) in codes {
        responses.insert(
            (*code).to_string(),
            json!({
                "description": description,
                "content": json_content(json!({ "$ref": "#/components/schemas/ErrorBody" })),
            }),
        );
    }
}

const COMMON_ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Bad input: `error.field` names the field, nothing was changed",
    ),
    ("401", "Missing or wrong bearer token"),
    ("404", "Not found"),
    (
        "409",
        "Refused in the current state (a job runs on the server, apps still deployed)",
    ),
    ("412", "A credential is missing from the vault"),
    ("413", "The body is larger than the service accepts"),
    ("429", "Rate limited: `Retry-After` says when to try again"),
    ("500", "Internal error: the service log has the details"),
    ("502", "The cloud, DNS provider or server failed"),
    ("504", "Timed out"),
];

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let info = &route.info;
    let definition = request_definition(info, generator);
    let output = (info.output_schema)(generator).to_value();
    let properties = definition
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: Vec<String> = definition
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let path_fields = route.path_fields();
    let mut parameters = Vec::new();
    for field in &path_fields {
        let schema = properties.get(*field).cloned().unwrap_or(json!({}));
        parameters.push(parameter(field, "path", true, schema));
    }
    let mut body = None;
    match route.rest() {
        Rest::Query => {
            for (name, schema) in &properties {
                if path_fields.contains(&name.as_str()) {
                    continue;
                }
                parameters.push(parameter(
                    name,
                    "query",
                    required.contains(name),
                    schema.clone(),
                ));
            }
        }
        Rest::Body => {
            let mut schema = definition.clone();
            if let Some(obj) = schema.as_object_mut() {
                obj.remove("$schema");
                if let Some(Value::Object(props)) = obj.get_mut("properties") {
                    props.retain(|k, _| !path_fields.contains(&k.as_str()));
                }
                let body_required: Vec<&String> = required
                    .iter()
                    .filter(|r| !path_fields.contains(&r.as_str()))
                    .collect();
                obj.insert("required".into(), json!(body_required));
            }
            body = Some(json!({
                "required": !required.iter().all(|r| path_fields.contains(&r.as_str())),
                "content": json_content(schema),
            }));
        }
    }
    let mut responses = Map::new();
    if route.starts_job() {
        responses.insert(
            "202".into(),
            json!({
                "description": "The job was recorded and runs in the service; follow it at `Location`",
                "headers": { "Location": {
                    "description": "`/api/jobs/{id}` of the job",
                    "schema": { "type": "string" },
                }},
                "content": json_content(reference::<JobView>(generator)),
            }),
        );
    }
    if route.plan.is_some() {
        parameters.push(json!({
            "name": "plan",
            "in": "query",
            "required": false,
            "description": "Answer what the job would do (200) and change nothing",
            "schema": { "type": "boolean" },
        }));
        responses.insert(
            "200".into(),
            json!({
                "description": "The plan (with `plan=true`)",
                "content": json_content(reference::<Plan>(generator)),
            }),
        );
    } else if !route.starts_job() {
        responses.insert(
            "200".into(),
            json!({ "description": info.summary, "content": json_content(output) }),
        );
    }
    error_responses(&mut responses, COMMON_ERRORS);
    let mut op = json!({
        "operationId": info.name,
        "summary": info.summary,
        "description": format!(
            "CLI: `livchat {}`. Effect: {:?}{}{}.",
            info.cli,
            info.effect,
            if info.job { "; starts a job" } else { "" },
            if info.open_world { "; reaches a cloud API or a server" } else { "" },
        ),
        "tags": [tag(route.path)],
        "parameters": parameters,
        "responses": responses,
        "x-livchat-effect": info.effect,
        "x-livchat-idempotent": info.idempotent,
        "x-livchat-open-world": info.open_world,
        "x-livchat-job": info.job,
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn parameter(name: &str, location: &str, required: bool, mut schema: Value) -> Value {
    let description = schema
        .as_object_mut()
        .and_then(|o| o.remove("description"))
        .unwrap_or(Value::Null);
    let mut p = json!({ "name": name, "in": location, "required": required, "schema": schema });
    if !description.is_null() {
        p["description"] = description;
    }
    p
}

fn tag(path: &str) -> &str {
    match path.split('/').nth(2).unwrap_or("system") {
        "servers" if path.contains("/apps") => "apps",
        "servers" => "servers",
        "apps" => "apps",
        "jobs" => "jobs",
        "provider" | "dns" => "providers",
        "settings" | "secrets" => "settings",
        _ => "system",
    }
}

/// The whole document.
pub fn document(routes: &[Route]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = COMPONENTS.into())
        .into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for route in routes {
        let op = operation(route, &mut generator);
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    let mut events_errors = Map::new();
    error_responses(&mut events_errors, COMMON_ERRORS);
    events_errors.insert(
        "200".into(),
        json!({
            "description": "Server-Sent Events: `progress` (the job), `log` (a log line; its `id` \
                is the line index, resumable with `Last-Event-ID`), `end` (the job, last event)",
            "content": { "text/event-stream": { "schema": { "type": "string" } } },
        }),
    );
    paths.insert(
        "/api/jobs/{id}/events".into(),
        json!({ "get": {
            "operationId": "job_events",
            "summary": "Follow a job: its progress, log lines and end, as Server-Sent Events",
            "tags": ["jobs"],
            "parameters": [
                { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "Last-Event-ID", "in": "header", "required": false,
                  "description": "Resume after this log line index",
                  "schema": { "type": "string" } },
            ],
            "responses": events_errors,
        }}),
    );
    let mut info_responses = Map::new();
    error_responses(&mut info_responses, &COMMON_ERRORS[1..2]);
    info_responses.insert(
        "200".into(),
        json!({ "description": "The service", "content": json_content(reference::<SystemInfo>(&mut generator)) }),
    );
    paths.insert(
        "/api/system/info".into(),
        json!({ "get": {
            "operationId": "system_info",
            "summary": "The service's version, the operations it serves and its home",
            "tags": ["system"],
            "responses": info_responses,
        }}),
    );
    paths.insert(
        "/health".into(),
        json!({ "get": {
            "operationId": "health",
            "summary": "Liveness (no token needed)",
            "tags": ["system"],
            "security": [],
            "responses": { "200": {
                "description": "The service answers",
                "content": json_content(reference::<Health>(&mut generator)),
            }},
        }}),
    );
    let _ = reference::<ErrorBody>(&mut generator);
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "LivChat Setup",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Servers, DNS and apps on your own cloud account. Long operations \
                answer 202 with a job; follow it at `/api/jobs/{id}` or its `/events`. \
                Every route except `/health` needs `Authorization: Bearer <token>` \
                (`livchat api token` prints it).",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "tags": [
            { "name": "servers" }, { "name": "apps" }, { "name": "jobs" },
            { "name": "providers" }, { "name": "settings" }, { "name": "system" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The vault secret `api_token` (`livchat api token`; \
                        `--rotate` replaces it without a restart)",
                },
            },
            "schemas": schemas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::routes;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_inside_the_document() {
        let doc = document(&routes());
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn operation_ids_are_the_registry_names_and_unique() {
        let doc = document(&routes());
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                ids.push(op["operationId"].as_str().unwrap().to_string());
            }
        }
        let before = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), before, "duplicate operationId");
        for info in livchat_core::ops::operations() {
            assert!(
                ids.contains(&info.name.to_string()),
                "{} missing",
                info.name
            );
        }
    }

    #[test]
    fn path_fields_are_not_repeated_in_bodies() {
        let doc = document(&routes());
        let setup = &doc["paths"]["/api/servers/{server}/setup"]["post"];
        let body = &setup["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"].get("server").is_none());
        assert!(body["properties"].get("zone").is_some());
        assert_eq!(setup["parameters"][0]["name"], "server");
    }
}
