//! Placement on a Swarm cluster (issue #16): constraints added to every service of a rendered
//! stack, and whether a stack keeps data in volumes (a database, pinned to one node).
//!
//! The constraints are built by the caller from allowlisted node labels; here they are only
//! written into `deploy.placement.constraints`, in the compose text and its redacted form
//! alike, so the plan shows what is deployed.

use secrecy::{ExposeSecret, SecretString};
use serde_yaml::{Mapping, Value};

use crate::AppsError;
use crate::render::RenderedStack;

impl RenderedStack {
    /// Whether the stack declares named volumes: its data lives on the node it runs on.
    pub fn has_volumes(&self) -> bool {
        serde_yaml::from_str::<Value>(&self.redacted)
            .ok()
            .and_then(|doc| doc.get("volumes").cloned())
            .and_then(|v| v.as_mapping().map(|m| !m.is_empty()))
            .unwrap_or(false)
    }

    /// The stack with `constraints` added to every service's placement (kept with any the
    /// template set). No constraints: the stack unchanged.
    pub fn with_placement(mut self, constraints: &[String]) -> Result<Self, AppsError> {
        if constraints.is_empty() {
            return Ok(self);
        }
        let place = |text: &str| add_constraints(&self.app, text, constraints);
        let compose = place(self.compose.expose_secret())?;
        let redacted = place(&self.redacted)?;
        self.compose = SecretString::from(compose);
        self.redacted = redacted;
        Ok(self)
    }
}

fn add_constraints(app: &str, text: &str, constraints: &[String]) -> Result<String, AppsError> {
    let invalid = |message: String| AppsError::InvalidStack {
        app: app.to_string(),
        errors: vec![message],
    };
    let mut doc: Value =
        serde_yaml::from_str(text).map_err(|e| invalid(format!("placement: {e}")))?;
    let services = doc
        .get_mut("services")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| invalid("placement: the stack has no services".into()))?;
    for (_, service) in services.iter_mut() {
        let list = entry(entry(entry(service, "deploy"), "placement"), "constraints");
        if !list.is_sequence() {
            *list = Value::Sequence(Vec::new());
        }
        let seq = list.as_sequence_mut().expect("just made a sequence");
        for c in constraints {
            let c = Value::String(c.clone());
            if !seq.contains(&c) {
                seq.push(c);
            }
        }
    }
    serde_yaml::to_string(&doc).map_err(|e| invalid(format!("placement: {e}")))
}

/// The mapping under `key`, created (or replacing a non-mapping) when absent.
fn entry<'a>(value: &'a mut Value, key: &str) -> &'a mut Value {
    if !value.is_mapping() {
        *value = Value::Mapping(Mapping::new());
    }
    let map = value.as_mapping_mut().expect("just made a mapping");
    map.entry(Value::String(key.into()))
        .or_insert_with(|| Value::Mapping(Mapping::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "services:\n  db:\n    image: pg\n    deploy:\n      placement:\n        constraints: [node.role == manager]\n  web:\n    image: web\nvolumes:\n  data: {}\n";

    #[test]
    fn constraints_join_every_service_and_keep_the_templates_own() {
        let out =
            add_constraints("a", STACK, &["node.labels.livchat.server == w-1".into()]).unwrap();
        let doc: Value = serde_yaml::from_str(&out).unwrap();
        let db = &doc["services"]["db"]["deploy"]["placement"]["constraints"];
        assert_eq!(
            db.as_sequence().unwrap().len(),
            2,
            "the template's constraint stays: {out}"
        );
        assert_eq!(
            doc["services"]["web"]["deploy"]["placement"]["constraints"][0],
            "node.labels.livchat.server == w-1"
        );
    }

    #[test]
    fn a_stack_without_services_is_an_error_naming_the_app() {
        let err = add_constraints("guestbook", "volumes: {}\n", &["x == y".into()]).unwrap_err();
        assert!(err.to_string().contains("guestbook"), "{err}");
    }
}
