//! What a user template may not do even though YAML escaping holds: read the process
//! environment, dump the whole context, print a list raw, or put a value into a string a shell
//! in the container parses.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{context, fixed_secrets, yaml};
use livchat_apps::{AppsError, Catalog, EndpointMode};

/// A user app with one free-text parameter and the given services block.
fn app_with(services: &str) -> String {
    format!(
        r#"
name: probe
version: "1"
category: application
description: A test app.
images:
  app: "busybox:1.36.1"
parameters:
  target:
    description: Free text from --set.
    default: "example.org"
template:
  inline: |
    services:
      app:
        image: {{{{ images.app }}}}
{services}
"#
    )
}

fn load(text: &str) -> Result<Catalog, AppsError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.yaml"), text).unwrap();
    Catalog::with_user_dirs(&[Path::new(dir.path()).into()])
}

fn render(catalog: &Catalog, target: &str) -> Result<serde_yaml::Value, AppsError> {
    let params = BTreeMap::from([("target".to_string(), target.to_string())]);
    catalog
        .render(
            "probe",
            &context(EndpointMode::Vip),
            &params,
            &fixed_secrets(catalog),
        )
        .map(|s| yaml(&s))
}

#[test]
fn templates_that_read_the_environment_dump_the_context_or_print_a_list_are_refused_at_load() {
    let cases = [
        (
            "get_env",
            "        environment:\n          X: {{ get_env(name=\"LIVCHAT_VAULT_PASSWORD\") }}",
        ),
        (
            "get_env",
            "        environment:\n          X: {{get_env (name=\"HOME\", default=\"\")}}",
        ),
        (
            "__tera_context",
            "        labels:\n          - {{- __tera_context -}}",
        ),
        (
            "__tera_context",
            "        {% set all = __tera_context %}labels: [x]",
        ),
        (
            "split",
            "        command: {{ params.target | split(pat=\",\") }}",
        ),
    ];
    for (name, services) in cases {
        let err = load(&app_with(services)).unwrap_err().to_string();
        assert!(
            err.contains("probe.yaml") && err.contains("template") && err.contains(name),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_set_value_in_a_shell_string_is_refused_naming_where() {
    let cases = [
        (
            "        healthcheck:\n          test: [\"CMD-SHELL\", {{ params.target }}]",
            "services.app.healthcheck.test[1]",
        ),
        (
            "        healthcheck:\n          test: {% set t = \"wget -q \" ~ params.target %}{{ t }}",
            "services.app.healthcheck.test",
        ),
        (
            "        command: [\"sh\", \"-c\", {% set t = \"ping \" ~ params.target %}{{ t }}]",
            "services.app.command[2]",
        ),
        (
            "        entrypoint: [\"/bin/bash\", \"-ec\"]\n        command: [{{ params.target }}]",
            "services.app.command[0]",
        ),
        (
            "        command: {% set t = \"ping \" ~ params.target %}{{ t }}",
            "services.app.command",
        ),
        (
            "        healthcheck:\n          test: [\"CMD\", \"env\", \"sh\", \"-c\", {{ params.target }}]",
            "services.app.healthcheck.test[4]",
        ),
    ];
    for (services, at) in cases {
        let catalog = load(&app_with(services)).expect(services);
        // Even a harmless value is refused: the template is at fault, not the value.
        let err = render(&catalog, "example.org").unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, AppsError::InvalidDefinition { ref field, .. } if field == "template")
                && message.contains("probe.yaml")
                && message.contains(at)
                && message.contains("environment"),
            "{services}: {message}"
        );
    }
}

#[test]
fn a_value_passed_as_environment_or_as_a_positional_argument_renders_unchanged() {
    let hostile = "x\"; touch /tmp/canary; echo \"$(id)`id`";
    let services = "        environment:\n          TARGET: {{ params.target }}\n        \
         entrypoint: [\"sh\", \"-c\", 'exec ping \"$$1\"', \"--\", {{ params.target }}]\n        \
         healthcheck:\n          test: [\"CMD-SHELL\", 'wget -q \"$$TARGET\"']";
    let catalog = load(&app_with(services)).unwrap();
    let doc = render(&catalog, hostile).unwrap();
    let app = &doc["services"]["app"];
    let unescape = |v: &serde_yaml::Value| v.as_str().unwrap().replace("$$", "$");
    assert_eq!(unescape(&app["environment"]["TARGET"]), hostile);
    assert_eq!(unescape(&app["entrypoint"][4]), hostile);
    assert_eq!(
        unescape(&app["healthcheck"]["test"][1]),
        "wget -q \"$TARGET\""
    );
}
