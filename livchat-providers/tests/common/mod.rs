//! Shared helpers of the integration tests: clients pointed at fakes or at Prism, fast retry
//! policies, and the check of every fake response body against the vendor spec.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fixtures::fake_hetzner::Faults;
use fixtures::specs::OpenApi;
use livchat_providers::{
    ActionProgress, CloudflareConfig, CloudflareDns, HetznerConfig, HetznerProvider, RetryPolicy,
};
use secrecy::SecretString;

/// Short delays so retry tests take milliseconds, with the real structure of the policy.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    }
}

pub fn hetzner_at(url: &str, token: &str, retry: RetryPolicy) -> HetznerProvider {
    HetznerProvider::new(
        SecretString::from(token.to_owned()),
        HetznerConfig {
            endpoint: url.to_owned(),
            retry,
            action_poll_interval: Duration::from_millis(50),
            action_timeout: Duration::from_secs(20),
        },
    )
    .expect("client config is valid")
}

pub fn cloudflare_at(url: &str, token: &str, retry: RetryPolicy) -> CloudflareDns {
    CloudflareDns::new(
        SecretString::from(token.to_owned()),
        CloudflareConfig {
            endpoint: url.to_owned(),
            retry,
        },
    )
    .expect("client config is valid")
}

/// A progress callback that keeps what it was told.
pub fn recorder() -> (
    Arc<Mutex<Vec<ActionProgress>>>,
    impl Fn(ActionProgress) + Send + Sync,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |p| s.lock().unwrap().push(p))
}

pub fn quiet(_: ActionProgress) {}

/// Checks every JSON body a fake sent against the vendor spec; panics listing violations.
pub fn assert_bodies_match_spec(faults: &Faults, spec: &OpenApi) {
    let mut problems = vec![];
    let mut checked = 0;
    for hit in faults.hits() {
        let Some(body) = &hit.body else { continue };
        // Cloudflare documents only 200 and 4XX bodies; its 5xx bodies have no schema to
        // check against (the fake sends the 4XX envelope).
        if hit.status >= 500
            && spec
                .response_schema(hit.method.as_str(), &hit.route, hit.status)
                .is_none()
        {
            continue;
        }
        checked += 1;
        if let Err(e) = spec.check_response(hit.method.as_str(), &hit.route, hit.status, body) {
            problems.push(format!("{} {} -> {}\n{e}", hit.method, hit.uri, hit.status));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} fake responses break the vendor schema:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// One Prism mock server per spec per test binary. A watchdog shell kills Prism within a
/// second of this test process exiting, since statics are never dropped.
pub struct Prism {
    pub url: String,
    log: PathBuf,
    /// The watchdog shell; kept so the handle is not reaped early.
    _watchdog: Mutex<Child>,
}

impl Prism {
    fn start(spec: PathBuf) -> Option<Prism> {
        let prism = fixtures::tools::require("prism")?;
        let port = fixtures::net::free_port();
        let log =
            std::env::temp_dir().join(format!("livchat-prism-{}-{port}.log", std::process::id()));
        let script = r#"
            "$PRISM" mock -h 127.0.0.1 -p "$PORT" "$SPEC" >"$LOG" 2>&1 &
            prism=$!
            while kill -0 "$OWNER" 2>/dev/null && kill -0 "$prism" 2>/dev/null; do sleep 0.5; done
            kill "$prism" 2>/dev/null
        "#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PRISM", &prism)
            .env("PORT", port.to_string())
            .env("SPEC", &spec)
            .env("LOG", &log)
            .env("OWNER", std::process::id().to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh for prism");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "Prism did not listen within 120 s; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(Prism {
            url: format!("http://127.0.0.1:{port}"),
            log,
            _watchdog: Mutex::new(child),
        })
    }
}

pub fn prism_hetzner() -> Option<&'static Prism> {
    static P: OnceLock<Option<Prism>> = OnceLock::new();
    P.get_or_init(|| {
        Prism::start(fixtures::tools::spec_path(
            "hetzner/hcloud-openapi.ba7c999.for-hcloud-0.26.json",
        ))
    })
    .as_ref()
}

pub fn prism_cloudflare() -> Option<&'static Prism> {
    static P: OnceLock<Option<Prism>> = OnceLock::new();
    P.get_or_init(|| {
        Prism::start(fixtures::tools::spec_path(
            "cloudflare/openapi.dns-zones.subset.json",
        ))
    })
    .as_ref()
}

impl Prism {
    /// Prism's log without colour codes.
    fn log_text(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // Skip an ANSI escape: ESC [ ... letter.
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Asserts that Prism received each `(method, path prefix)` and found no violation in any
    /// request it received (Prism's own examples break the response schema in places; those
    /// `response.*` violations are not ours and are ignored).
    pub fn assert_received_valid(&self, expected: &[(&str, &str)]) {
        let log = self.log_text();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Violation: request"))
            .collect();
        assert!(
            bad.is_empty(),
            "Prism found request violations:\n{}",
            bad.join("\n")
        );
        let received: Vec<(String, String)> = log
            .lines()
            .filter(|l| l.contains("[HTTP SERVER]") && l.contains("Request received"))
            .filter_map(|l| {
                let rest = l.split("[HTTP SERVER] ").nth(1)?;
                let mut w = rest.split_whitespace();
                Some((w.next()?.to_owned(), w.next()?.to_owned()))
            })
            .collect();
        for (method, prefix) in expected {
            assert!(
                received
                    .iter()
                    .any(|(m, p)| m.eq_ignore_ascii_case(method) && p.starts_with(prefix)),
                "Prism never received {method} {prefix}; it received {received:?}"
            );
        }
    }
}
