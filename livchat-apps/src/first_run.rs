//! First-run claims: an app whose setup page gives the instance to its first visitor (n8n's
//! owner setup, Mattermost's first user, Open WebUI's first signup) is claimed by the deploy
//! job before anyone outside the server can reach it.
//!
//! The job deploys the stack with every Traefik router switched off ([`close_public_routes`]),
//! waits until it is healthy, sends the claim from inside the app's own container
//! ([`claim_command`]: the JSON body, which holds the admin password, travels on stdin, never
//! in argv), and only then deploys the stack as rendered, routers on. A name in public
//! certificate logs therefore never points at an open setup page.

use secrecy::{ExposeSecret, SecretString};
use serde_yaml::{Mapping, Value};

use crate::definition::HttpMethod;
use crate::error::AppsError;
use crate::render::HttpRequestStep;

/// `docker exec` argv and stdin for a claim (run in a task of the step's service).
pub struct ClaimCommand {
    pub argv: Vec<String>,
    /// The JSON body: holds the admin password.
    pub stdin: SecretString,
}

/// Posts stdin to the app on loopback with curl, or busybox wget where the image has no curl
/// (wget can only POST), and prints the HTTP status. `$1` method, `$2` port, `$3` path.
const CLAIM_SCRIPT: &str = r#"url="http://127.0.0.1:$2$3"
if command -v curl >/dev/null 2>&1; then
  exec curl -sS -o /dev/null -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' --data-binary @- "$url"
elif command -v wget >/dev/null 2>&1; then
  [ "$1" = POST ] || { echo "the container has no curl, and wget can only POST" >&2; exit 97; }
  out=$(wget -S -O /dev/null --header 'Content-Type: application/json' --post-file=/dev/stdin "$url" 2>&1)
  code=$(printf '%s\n' "$out" | sed -n 's#.*HTTP/[0-9.]* \([0-9][0-9][0-9]\).*#\1#p' | tail -n 1)
  [ -n "$code" ] || { printf '%s\n' "$out" >&2; exit 99; }
  printf '%s' "$code"
else
  echo "the container has neither curl nor wget to send the first-run claim" >&2
  exit 98
fi
"#;

/// The command that sends `step`'s claim from inside its service's container.
pub fn claim_command(step: &HttpRequestStep) -> ClaimCommand {
    let method = match step.method {
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
    };
    ClaimCommand {
        argv: vec![
            "sh".into(),
            "-c".into(),
            CLAIM_SCRIPT.into(),
            "livchat-claim".into(),
            method.into(),
            step.port.to_string(),
            step.path.clone(),
        ],
        stdin: SecretString::from(step.body.expose_secret().to_owned()),
    }
}

/// The HTTP status [`claim_command`] printed, if it printed one.
pub fn claim_status(stdout: &str) -> Option<u16> {
    stdout
        .trim()
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
}

/// Whether `status` means the claim succeeded for `step`.
pub fn claim_accepted(step: &HttpRequestStep, status: u16) -> bool {
    if step.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        step.expect_status.contains(&status)
    }
}

/// `compose` with `traefik.enable=false` on every service that has Traefik labels, so no
/// router exists while the app waits for its first-run claim. Only service labels change, so
/// the later deploy with routers on updates the services without restarting their tasks.
pub fn close_public_routes(app: &str, compose: &SecretString) -> Result<SecretString, AppsError> {
    let invalid = |message: String| AppsError::InvalidStack {
        app: app.to_owned(),
        errors: vec![format!("closing the public routes: {message}")],
    };
    let mut doc: Value =
        serde_yaml::from_str(compose.expose_secret()).map_err(|e| invalid(e.to_string()))?;
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return Err(invalid("the stack has no services".into()));
    };
    for (_, service) in services.iter_mut() {
        let Some(labels) = service.get_mut("deploy").and_then(|d| d.get_mut("labels")) else {
            continue;
        };
        close_labels(labels);
    }
    let text = serde_yaml::to_string(&doc).map_err(|e| invalid(e.to_string()))?;
    Ok(SecretString::from(text))
}

fn close_labels(labels: &mut Value) {
    match labels {
        Value::Sequence(items) => {
            let traefik = items
                .iter()
                .any(|l| l.as_str().is_some_and(|s| s.starts_with("traefik.")));
            if traefik {
                items.retain(|l| {
                    l.as_str()
                        .is_none_or(|s| s.split('=').next() != Some("traefik.enable"))
                });
                items.push(Value::String("traefik.enable=false".into()));
            }
        }
        Value::Mapping(map) => {
            let traefik = map
                .keys()
                .any(|k| k.as_str().is_some_and(|s| s.starts_with("traefik.")));
            if traefik {
                map.insert("traefik.enable".into(), "false".into());
            }
        }
        _ => {}
    }
}

/// Whether any service of `compose` would get a Traefik router (`traefik.enable=true`).
pub fn has_public_routes(compose: &str) -> bool {
    let Ok(doc) = serde_yaml::from_str::<Value>(compose) else {
        return false;
    };
    let services = doc.get("services").and_then(Value::as_mapping);
    services
        .into_iter()
        .flat_map(Mapping::values)
        .filter_map(|s| s.get("deploy").and_then(|d| d.get("labels")))
        .any(|labels| match labels {
            Value::Sequence(items) => items
                .iter()
                .any(|l| l.as_str() == Some("traefik.enable=true")),
            Value::Mapping(map) => map
                .get("traefik.enable")
                .is_some_and(|v| v.as_str() == Some("true") || v.as_bool() == Some(true)),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = r#"version: "3.8"
services:
  editor:
    image: n8nio/n8n:1
    command: ["sh", "-c", "echo $$HOME"]
    deploy:
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.n8n.rule=Host(`n8n.example.com`)"
  worker:
    image: n8nio/n8n:1
    deploy:
      labels:
        traefik.enable: "true"
        traefik.http.routers.w.rule: Host(`w.example.com`)
  internal:
    image: redis:7
    deploy:
      labels:
        - "com.example.team=ops"
"#;

    #[test]
    fn closing_routes_turns_off_every_traefik_router_in_list_and_map_labels() {
        let closed = close_public_routes("n8n", &SecretString::from(STACK.to_owned())).unwrap();
        let text = closed.expose_secret();
        assert!(has_public_routes(STACK));
        assert!(!has_public_routes(text), "{text}");
        assert_eq!(text.matches("traefik.enable=false").count(), 1, "{text}");
        // The map form and everything else survive, including `$$` escapes.
        assert!(
            text.contains("traefik.enable: 'false'") || text.contains("traefik.enable: \"false\""),
            "{text}"
        );
        assert!(text.contains("echo $$HOME"), "{text}");
        assert!(text.contains("com.example.team=ops"), "{text}");
        assert!(
            !text.contains("com.example.team=ops\n  - traefik.enable"),
            "{text}"
        );
    }

    #[test]
    fn a_service_without_traefik_labels_gets_none() {
        let closed = close_public_routes("n8n", &SecretString::from(STACK.to_owned())).unwrap();
        let doc: Value = serde_yaml::from_str(closed.expose_secret()).unwrap();
        let labels = &doc["services"]["internal"]["deploy"]["labels"];
        assert_eq!(labels.as_sequence().unwrap().len(), 1, "{labels:?}");
    }

    #[test]
    fn the_claim_body_goes_on_stdin_never_into_argv() {
        let step = HttpRequestStep {
            method: HttpMethod::Post,
            url: "https://n8n.example.com/rest/owner/setup".into(),
            stack: "n8n".into(),
            service: "editor".into(),
            port: 5678,
            path: "/rest/owner/setup".into(),
            body: SecretString::from(r#"{"password":"hunter2-secret"}"#.to_owned()),
            expect_status: vec![200],
        };
        let cmd = claim_command(&step);
        assert!(cmd.argv.iter().all(|a| !a.contains("hunter2")));
        assert_eq!(
            cmd.stdin.expose_secret(),
            r#"{"password":"hunter2-secret"}"#
        );
        assert_eq!(&cmd.argv[4..], ["POST", "5678", "/rest/owner/setup"]);
        assert!(claim_accepted(&step, 200));
        assert!(!claim_accepted(&step, 201));
        assert_eq!(claim_status("403"), Some(403));
        assert_eq!(claim_status("curl: (7) Failed"), None);
    }
}
