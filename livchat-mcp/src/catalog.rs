//! The tool list, built once from the core's operation registry: names, titles, one-line
//! descriptions, input schemas (the typed request plus the MCP-only `plan`, `confirm` and
//! `max_wait_secs`), output schemas (the result envelope) and annotations.

use std::sync::Arc;

use livchat_core::ops::{Effect, OperationInfo};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// Tools whose job the call follows (progress, `max_wait_secs`, cancellation).
pub const LONG: &[&str] = &[
    "server_create",
    "server_setup",
    "server_delete",
    "server_join",
    "server_leave",
    "app_deploy",
    "app_undeploy",
    "job_retry",
];

/// The default and the ceiling of `max_wait_secs`.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 300;
pub const MAX_WAIT_CEILING_SECS: u64 = 3600;

/// How a tool behaves beyond its operation: what the MCP layer adds.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub info: &'static OperationInfo,
    /// Accepts `plan: true` (every mutating tool).
    pub plannable: bool,
    /// Needs `confirm: true` to change anything.
    pub destructive: bool,
    /// Follows its job while the client listens.
    pub long: bool,
}

impl Shape {
    pub fn of(info: &'static OperationInfo) -> Shape {
        Shape {
            info,
            plannable: info.effect != Effect::Read,
            destructive: info.effect == Effect::Destroy,
            long: LONG.contains(&info.name),
        }
    }
}

pub fn shapes() -> Vec<Shape> {
    livchat_core::ops::operations()
        .iter()
        .filter(|info| crate::dispatch::exposed(info.name))
        .map(Shape::of)
        .collect()
}

pub fn tools(shapes: &[Shape]) -> Vec<Tool> {
    shapes.iter().map(tool).collect()
}

fn tool(shape: &Shape) -> Tool {
    let info = shape.info;
    let annotations = ToolAnnotations::with_title(title(info))
        .read_only(info.effect == Effect::Read)
        .destructive(shape.destructive)
        .idempotent(info.idempotent)
        .open_world(info.open_world);
    // The title goes in the annotations only: clients of every protocol version read it there
    // (newer ones after `Tool.title`), and both would repeat it in 30 tools.
    Tool::new_with_raw(
        info.name,
        Some(info.summary.into()),
        Arc::new(input_schema(shape)),
    )
    .with_raw_output_schema(Arc::new(output_schema(shape)))
    .with_annotations(annotations)
}

/// "server dns update" -> "Server dns update": the CLI words the user already knows.
fn title(info: &OperationInfo) -> String {
    let mut chars = info.cli.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => info.name.to_string(),
    }
}

fn generator(serialize: bool) -> schemars::SchemaGenerator {
    let settings = SchemaSettings::draft2020_12();
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    settings.into_generator()
}

/// Resolves a root `$ref` into the definition it names (clients expect `type: object` at the
/// root of an input schema) and attaches the generator's definitions as `$defs`.
fn rooted(schema: schemars::Schema, generator: &mut schemars::SchemaGenerator) -> JsonObject {
    let mut defs = generator.take_definitions(true);
    let mut root = match schema.to_value() {
        Value::Object(map) => map,
        other => {
            let mut map = JsonObject::new();
            map.insert("allOf".into(), json!([other]));
            map
        }
    };
    if let Some(Value::String(reference)) = root.get("$ref").cloned()
        && let Some(name) = reference.strip_prefix("#/$defs/")
        && let Some(Value::Object(def)) = defs.get(name).cloned()
    {
        root.remove("$ref");
        for (k, v) in def {
            root.entry(k).or_insert(v);
        }
        // Still referenced from elsewhere (a recursive type) or not: keeping it is harmless.
        if !serde_json::to_string(&defs).is_ok_and(|s| s.contains(&reference)) {
            defs.remove(name);
        }
    }
    if !defs.is_empty() {
        root.insert("$defs".into(), Value::Object(defs));
    }
    root.remove("$schema");
    root.remove("title");
    // The request type's doc comment: the tool's one-line description says it already, and
    // repeated in 30 input schemas it was 2.2 KB of `tools/list`.
    root.remove("description");
    root
}

pub fn input_schema(shape: &Shape) -> JsonObject {
    let mut generator = generator(false);
    let schema = (shape.info.input_schema)(&mut generator);
    let mut root = rooted(schema, &mut generator);
    root.insert("type".into(), json!("object"));
    let props = root
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("an object schema's properties are an object");
    // An optional field's `default: null` says what leaving it out already says.
    for prop in props.values_mut().filter_map(Value::as_object_mut) {
        if prop.get("default") == Some(&Value::Null) {
            prop.remove("default");
        }
    }
    if shape.plannable {
        props.insert(
            "plan".into(),
            json!({"type": "boolean", "default": false,
                   "description": "Only return what would change."}),
        );
    }
    if shape.destructive {
        props.insert(
            "confirm".into(),
            json!({"type": "boolean", "default": false,
                   "description": "Must be true to act; else the plan is returned."}),
        );
    }
    if shape.long {
        props.insert(
            "max_wait_secs".into(),
            json!({"type": "integer", "minimum": 0, "maximum": MAX_WAIT_CEILING_SECS,
                   "default": DEFAULT_MAX_WAIT_SECS,
                   "description": "Seconds to follow the job (with a progress token) before returning it."}),
        );
    }
    root
}

/// The envelope every tool answers with: `{result}` when it ran, `{plan, confirm_required}`
/// when it only planned, and for job tools `log_tail` with the job's last log lines.
///
/// Output schemas are for validating `structuredContent`, not for the model, and every tool
/// carries one, so they are cut to the top level of `result`: each of its fields keeps only
/// its JSON type. The same job and plan structure repeated in six job tools would otherwise
/// make most of `tools/list` (issue #15 keeps it under 40 KB).
pub fn output_schema(shape: &Shape) -> JsonObject {
    let mut generator = generator(true);
    let result = (shape.info.output_schema)(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    let mut props = serde_json::Map::new();
    props.insert("result".into(), shallow(&result, &defs, 1));
    let mut one_of = vec![json!({"required": ["result"]})];
    if shape.plannable {
        props.insert("plan".into(), json!({"type": "object"}));
        props.insert("confirm_required".into(), json!({"type": "boolean"}));
        one_of.push(json!({"required": ["plan"]}));
    }
    if shape.info.job {
        props.insert("log_tail".into(), json!({"type": "array"}));
    }
    let mut root = JsonObject::new();
    root.insert("type".into(), json!("object"));
    root.insert("properties".into(), Value::Object(props));
    if one_of.len() > 1 {
        root.insert("oneOf".into(), Value::Array(one_of));
    } else {
        root.insert("required".into(), json!(["result"]));
    }
    root
}

/// `schema` down to `depth` levels of object properties (or array items), `$ref`s resolved;
/// below that, a schema is only its JSON type.
fn shallow(schema: &Value, defs: &serde_json::Map<String, Value>, depth: usize) -> Value {
    let schema = resolve(schema, defs);
    let only_type = || match json_type(schema, defs) {
        Some(t) => json!({ "type": t }),
        None => json!({}),
    };
    if depth == 0 {
        return only_type();
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let mut out = JsonObject::new();
        out.insert("type".into(), json!("object"));
        let props = props
            .iter()
            .map(|(k, v)| (k.clone(), shallow(v, defs, depth - 1)))
            .collect();
        out.insert("properties".into(), Value::Object(props));
        // No `required` list: it repeated every field name of each job and server view
        // (issue #16's two job tools took tools/list over 40 KB); the types still check.
        return Value::Object(out);
    }
    if let Some(items) = schema.get("items") {
        return json!({"type": "array", "items": shallow(items, defs, depth - 1)});
    }
    only_type()
}

fn resolve<'a>(schema: &'a Value, defs: &'a serde_json::Map<String, Value>) -> &'a Value {
    let name = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"));
    match name.and_then(|n| defs.get(n)) {
        Some(def) => resolve(def, defs),
        None => schema,
    }
}

/// The JSON type(s) a schema allows: its `type`, or the union of its alternatives' types
/// (`Option<T>` is `anyOf [T, null]`; enums are `oneOf` of typed constants). `None` when it
/// cannot tell, and then the field is left unconstrained.
fn json_type(schema: &Value, defs: &serde_json::Map<String, Value>) -> Option<Value> {
    let schema = resolve(schema, defs);
    if let Some(t) = schema.get("type") {
        return Some(t.clone());
    }
    let alternatives = ["oneOf", "anyOf"]
        .iter()
        .find_map(|k| schema.get(*k).and_then(Value::as_array))?;
    let mut types = std::collections::BTreeSet::new();
    for alternative in alternatives {
        match json_type(alternative, defs)? {
            Value::String(t) => {
                types.insert(t);
            }
            Value::Array(ts) => {
                for t in ts {
                    types.insert(t.as_str()?.to_owned());
                }
            }
            _ => return None,
        }
    }
    Some(match types.len() {
        0 => return None,
        1 => json!(types.pop_first()),
        _ => json!(types),
    })
}
