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

use crate::definition::{AppDefinition, FirstRunAdmin, HttpMethod};
use crate::error::AppsError;
use crate::render::HttpRequestStep;

/// `docker exec` argv and stdin for a claim (run in a task of the step's service).
pub struct ClaimCommand {
    pub argv: Vec<String>,
    /// The JSON body: holds the admin password.
    pub stdin: SecretString,
}

/// Posts stdin to the app on loopback with curl, or busybox wget where the image has no curl
/// (wget can only POST), or node where the image has neither (Debian-slim Node.js images such
/// as Cal.com's), and prints the HTTP status. `$1` method, `$2` port, `$3` path.
const CLAIM_SCRIPT: &str = r#"url="http://127.0.0.1:$2$3"
if command -v curl >/dev/null 2>&1; then
  exec curl -sS -o /dev/null -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' --data-binary @- "$url"
elif command -v wget >/dev/null 2>&1; then
  [ "$1" = POST ] || { echo "the container has no curl, and wget can only POST" >&2; exit 97; }
  out=$(wget -S -O /dev/null --header 'Content-Type: application/json' --post-file=/dev/stdin "$url" 2>&1)
  code=$(printf '%s\n' "$out" | sed -n 's#.*HTTP/[0-9.]* \([0-9][0-9][0-9]\).*#\1#p' | tail -n 1)
  [ -n "$code" ] || { printf '%s\n' "$out" >&2; exit 99; }
  printf '%s' "$code"
elif command -v node >/dev/null 2>&1; then
  exec node -e '
const [method, port, path] = process.argv.slice(1);
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c)).on("end", () => {
  const body = Buffer.concat(chunks);
  const headers = { "Content-Type": "application/json", "Content-Length": body.length };
  const req = require("http").request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
    res.resume();
    process.stdout.write(String(res.statusCode));
  });
  req.on("error", (e) => { console.error(e.message); process.exit(1); });
  req.end(body);
});' "$1" "$2" "$3"
else
  echo "the container has none of curl, wget or node to send the first-run claim" >&2
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

/// One line for a deploy plan and job log saying how `def`'s first admin is made, from its
/// `first_run` declaration; for an open setup page it is a warning telling the user what to do.
/// `None` when the definition declares nothing (a user app).
pub fn summary(def: &AppDefinition) -> Option<String> {
    let fr = def.first_run.as_ref()?;
    let title = def.title.as_deref().unwrap_or(&def.name);
    let vault = |s: &String| format!(" (password in the vault: app.{}.{s})", def.name);
    let secret = fr.secret.as_ref().map(vault).unwrap_or_default();
    let note = if fr.note.is_empty() {
        String::new()
    } else {
        format!(": {}", fr.note)
    };
    Some(match fr.admin {
        FirstRunAdmin::Claimed => format!(
            "first admin of {title} claimed by the deploy before any public route opens{secret}{note}"
        ),
        FirstRunAdmin::Environment => {
            format!("first admin of {title} created at its first start{secret}{note}")
        }
        FirstRunAdmin::NoAccounts => format!("{title} has no admin account to claim{note}"),
        FirstRunAdmin::OpenSetupPage => {
            format!("WARNING: {title}'s setup page is open to whoever reaches it first{note}")
        }
    })
}

/// Whether `def` declares that its setup page stays open at first start.
pub fn leaves_setup_page_open(def: &AppDefinition) -> bool {
    def.first_run
        .as_ref()
        .is_some_and(|f| f.admin == FirstRunAdmin::OpenSetupPage)
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
    fn the_plan_line_names_the_vault_secret_or_warns_about_an_open_page() {
        let catalog = crate::Catalog::builtin().unwrap();
        let n8n = summary(catalog.get("n8n").unwrap()).unwrap();
        assert!(n8n.contains("claimed by the deploy"), "{n8n}");
        assert!(n8n.contains("app.n8n.owner_password"), "{n8n}");
        let grafana = summary(catalog.get("grafana").unwrap()).unwrap();
        assert!(grafana.contains("app.grafana.admin_password"), "{grafana}");
        // No built-in leaves its setup page open any more; a user definition still may.
        let user = crate::Catalog::from_sources(&[(
            "name: crm\ntitle: \"Some CRM\"\nversion: \"1\"\ncategory: business\ndescription: x\nimages:\n  app: \"busybox:1.36.1\"\ntemplate:\n  file: crm.yml.tera\nfirst_run:\n  admin: open_setup_page\n  note: \"sign up first\"\n",
            "services:\n  app:\n    image: {{ images.app }}\n",
            "crm.yaml",
        )])
        .unwrap();
        let crm = user.get("crm").unwrap();
        assert!(leaves_setup_page_open(crm));
        let line = summary(crm).unwrap();
        assert_eq!(
            line,
            "WARNING: Some CRM's setup page is open to whoever reaches it first: sign up first"
        );
        assert!(!leaves_setup_page_open(catalog.get("gitea").unwrap()));
        assert!(!leaves_setup_page_open(catalog.get("n8n").unwrap()));
    }

    /// Cal.com's image has neither curl nor wget: the claim must still reach the app, through
    /// node, with the body from stdin. Runs the real script with only `sh` and `node` on PATH
    /// against a one-shot HTTP server (skipped where node is not installed).
    #[test]
    fn without_curl_or_wget_the_claim_goes_through_node() {
        use std::io::{BufRead, BufReader, Read, Write};
        let Some(node) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("node"))
            .find(|p| p.is_file())
        else {
            eprintln!("node is not installed: skipped");
            return;
        };
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&node, bin.path().join("node")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&stream)
                .write_all(
                    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
            (head, String::from_utf8(body).unwrap())
        });
        let step = HttpRequestStep {
            method: HttpMethod::Post,
            url: "https://cal.example.com/api/auth/setup".into(),
            stack: "calcom".into(),
            service: "calcom".into(),
            port,
            path: "/api/auth/setup".into(),
            body: SecretString::from(r#"{"password":"hunter2-secret"}"#.to_owned()),
            expect_status: vec![201],
        };
        let cmd = claim_command(&step);
        let mut child = std::process::Command::new("/bin/sh")
            .args(&cmd.argv[1..])
            .env_clear()
            .env("PATH", bin.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(cmd.stdin.expose_secret().as_bytes())
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let (head, body) = server.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(claim_status(&stdout), Some(201), "{stdout} / {stderr}");
        assert!(
            head[0].starts_with("POST /api/auth/setup HTTP/1.1"),
            "{head:?}"
        );
        assert_eq!(body, r#"{"password":"hunter2-secret"}"#);
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
