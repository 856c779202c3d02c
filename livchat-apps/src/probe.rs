//! The declared health path (`health_check.http_path`), requested from inside the app's own
//! container before a deploy is called healthy: Swarm's "running" says the process started,
//! this says the app answers HTTP where its route will send visitors.
//!
//! The request goes to the port Traefik's route targets, on loopback in the task's network
//! namespace (which sits on the overlay network), with whichever client the image has: curl,
//! busybox wget, or node. Loopback needs no name resolution, so even a static busybox probes.

use serde_yaml::Value;

use crate::render::RenderedStack;

/// What to request and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The stack's service Traefik routes to (its first such service).
    pub service: String,
    pub port: u16,
    pub path: String,
}

/// Exit status of [`probe_argv`] when the container has none of curl, wget or node.
pub const NO_CLIENT: u32 = 98;

/// GETs `http://127.0.0.1:$1$2` and prints the HTTP status (redirects are not followed: a
/// 3xx answers). Busybox wget exits non-zero on 4xx/5xx but prints the status line with -S;
/// it gets no `-T`: Debian's static busybox 1.35 crashes with it, and the `docker exec`
/// around the script has its own timeout.
const PROBE_SCRIPT: &str = r#"url="http://127.0.0.1:$1$2"
if command -v curl >/dev/null 2>&1; then
  exec curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$url"
elif command -v wget >/dev/null 2>&1; then
  out=$(wget -S -O /dev/null "$url" 2>&1)
  code=$(printf '%s\n' "$out" | sed -n 's#.*HTTP/[0-9.]* \([0-9][0-9][0-9]\).*#\1#p' | head -n 1)
  [ -n "$code" ] || { printf '%s\n' "$out" >&2; exit 99; }
  printf '%s' "$code"
elif command -v node >/dev/null 2>&1; then
  exec node -e '
const [port, path] = process.argv.slice(1);
const req = require("http").get({ host: "127.0.0.1", port, path, timeout: 10000 }, (res) => {
  res.resume();
  process.stdout.write(String(res.statusCode));
});
req.on("timeout", () => req.destroy(new Error("timed out")));
req.on("error", (e) => { console.error(e.message); process.exit(1); });' "$1" "$2"
else
  echo "the container has none of curl, wget or node" >&2
  exit 98
fi
"#;

/// The `docker exec` argv that requests `probe`.
pub fn probe_argv(probe: &HttpProbe) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        PROBE_SCRIPT.into(),
        "livchat-probe".into(),
        probe.port.to_string(),
        probe.path.clone(),
    ]
}

/// Whether an answer counts as healthy: 2xx, or a 3xx redirect (to a login page, say).
pub fn is_healthy_status(status: u16) -> bool {
    (200..400).contains(&status)
}

impl RenderedStack {
    /// The probe of the declared `http_path`: the first service (in the stack's order) whose
    /// labels give Traefik a target port. `None` without a path or without a routed service.
    pub fn http_probe(&self) -> Option<HttpProbe> {
        let path = self.health_check.http_path.clone()?;
        let doc: Value = serde_yaml::from_str(self.redacted()).ok()?;
        doc.get("services")?
            .as_mapping()?
            .iter()
            .find_map(|(name, service)| {
                let port = routed_port(service)?;
                Some(HttpProbe {
                    service: name.as_str()?.to_owned(),
                    port,
                    path: path.clone(),
                })
            })
    }
}

/// The port of a `traefik.http.services.<x>.loadbalancer.server.port=<port>` label, from a
/// service's `deploy.labels` (list or map form).
fn routed_port(service: &Value) -> Option<u16> {
    let labels = service.get("deploy")?.get("labels")?;
    let pairs: Vec<(String, String)> = match labels {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|l| l.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    Value::Number(n) => n.to_string(),
                    other => other.as_str()?.to_owned(),
                };
                Some((k.as_str()?.to_owned(), value))
            })
            .collect(),
        _ => return None,
    };
    pairs.iter().find_map(|(k, v)| {
        (k.starts_with("traefik.http.services.") && k.ends_with(".loadbalancer.server.port"))
            .then(|| v.parse().ok())
            .flatten()
    })
}
