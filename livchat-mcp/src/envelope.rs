//! Tool results: `structuredContent` in the envelope `catalog::output_schema` declares, with a
//! short text line for clients that only read text; failures as `isError` results naming the
//! field, never as protocol errors.

use livchat_core::ops::{JobView, LogLineView, Plan};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::catalog::Shape;
use crate::dispatch::Failure;

/// Above this, the text line summarises instead of repeating the structured result.
const TEXT_MAX: usize = 2000;

fn ok(structured: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

pub fn value(shape: &Shape, value: Value) -> CallToolResult {
    let compact = value.to_string();
    let text = if compact.len() <= TEXT_MAX {
        compact
    } else {
        match &value {
            Value::Array(items) => format!(
                "{}: {} items (see structuredContent.result)",
                shape.info.name,
                items.len()
            ),
            _ => format!("{}: done (see structuredContent.result)", shape.info.name),
        }
    };
    ok(json!({ "result": value }), text)
}

pub fn plan(plan: &Plan, confirm_required: bool) -> CallToolResult {
    let mut text = format!(
        "Plan only, nothing changed: {} ({} steps, {} resources, {} DNS records).",
        plan.operation,
        plan.steps.len(),
        plan.resources.len(),
        plan.dns_records.len()
    );
    if confirm_required {
        text.push_str(" Call again with confirm: true to do it.");
    }
    ok(
        json!({ "plan": plan, "confirm_required": confirm_required }),
        text,
    )
}

pub fn job(shape: &Shape, view: &JobView, tail: &[LogLineView]) -> CallToolResult {
    let status = serde_json::to_value(view.status).unwrap_or(Value::Null);
    let mut text = format!(
        "Job {} ({}): {} {}%",
        view.id,
        shape.info.name,
        status.as_str().unwrap_or("?"),
        view.progress
    );
    if let Some(step) = &view.current_step {
        text.push_str(&format!(", step {step}"));
    }
    if let Some(error) = &view.error {
        text.push_str(&format!(", error: {error}"));
    }
    text.push_str(". It runs on; follow it with job_wait or job_logs.");
    ok(json!({ "result": view, "log_tail": tail }), text)
}

fn error(kind: &str, field: Option<&str>, message: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    result.structured_content = Some(json!({
        "error": { "kind": kind, "field": field, "message": message }
    }));
    result
}

pub fn failure(failure: &Failure) -> CallToolResult {
    match failure {
        Failure::Input { field, message } => error(
            "bad_input",
            Some(field),
            format!("bad input: `{field}`: {message}"),
        ),
        Failure::Core(e) => {
            let kind = e.kind();
            let message = match e.field() {
                Some(field) if !e.to_string().contains(field) => {
                    format!("{}: `{field}`: {e}", kind.as_str())
                }
                _ => format!("{}: {e}", kind.as_str()),
            };
            error(kind.as_str(), e.field(), message)
        }
    }
}

pub fn cancelled() -> CallToolResult {
    error("cancelled", None, "cancelled by the client".to_string())
}
