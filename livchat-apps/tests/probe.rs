//! The declared health path (`health_check.http_path`): every built-in app that declares one
//! gets a probe of the service and port its route targets, and the probe script answers with
//! the status for real, with curl, with busybox wget, and says so when it has no client.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use livchat_apps::probe::{HttpProbe, NO_CLIENT, probe_argv};
use livchat_apps::{Catalog, EndpointMode};

#[test]
fn every_app_declaring_a_health_path_has_a_probe_of_its_routed_port() {
    let catalog = Catalog::builtin().unwrap();
    let mut probed = 0;
    for entry in catalog.list() {
        let d = &entry.definition;
        let Some(path) = &d.health_check.http_path else {
            continue;
        };
        for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
            let stack = common::render(&catalog, &d.name, mode);
            let probe = stack
                .http_probe()
                .unwrap_or_else(|| panic!("{}: http_path {path} but no routed port", d.name));
            assert_eq!(&probe.path, path);
            assert!(probe.port > 0, "{}", d.name);
            let services = common::yaml(&stack)["services"].clone();
            assert!(
                services.get(&probe.service).is_some(),
                "{}: {} is not a service of the stack",
                d.name,
                probe.service
            );
        }
        probed += 1;
    }
    assert!(probed >= 40, "only {probed} apps declare a health path");
    let n8n = common::render(&catalog, "n8n", EndpointMode::Vip)
        .http_probe()
        .unwrap();
    assert_eq!(
        n8n,
        HttpProbe {
            service: "editor".into(),
            port: 5678,
            path: "/healthz".into()
        }
    );
}

/// Answers one request with `status_line` and returns its request line; gives up after
/// 20 s so that a client that never connects fails the test instead of hanging it.
fn http_server(status_line: &'static str) -> (u16, std::thread::JoinHandle<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => return None,
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let len = conn.read(&mut buf).unwrap_or(0);
        let request = String::from_utf8_lossy(&buf[..len]);
        let _ = conn.write_all(
            format!("{status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        Some(request.lines().next().unwrap_or_default().to_owned())
    });
    (port, handle)
}

fn probe_args(port: u16) -> Vec<String> {
    probe_argv(&HttpProbe {
        service: "web".into(),
        port,
        path: "/healthz?x=1".into(),
    })
}

const ANSWERS: [(&str, &str); 3] = [
    ("HTTP/1.1 200 OK", "200"),
    ("HTTP/1.1 302 Found", "302"),
    ("HTTP/1.1 503 Service Unavailable", "503"),
];

/// Runs the probe with `run(argv)` against a server answering each of [`ANSWERS`].
fn check_answers(client: &str, run: impl Fn(&[String]) -> Output) {
    for (status_line, expected) in ANSWERS {
        let (port, server) = http_server(status_line);
        let out = run(&probe_args(port));
        let seen = server.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{client}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            seen.as_deref(),
            Some("GET /healthz?x=1 HTTP/1.1"),
            "{client}"
        );
    }
}

#[test]
fn the_probe_prints_the_status_with_curl() {
    let Some(curl) = fixtures::tools::find("curl") else {
        assert!(!fixtures::tools::real_tests_required(), "curl is missing");
        return;
    };
    // A PATH holding only what the script needs and curl, so the curl branch runs.
    let dir = tempfile::tempdir().unwrap();
    for tool in ["sh", "sed", "head", "printf"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
    }
    std::os::unix::fs::symlink(curl, dir.path().join("curl")).unwrap();
    check_answers("curl", |argv| {
        Command::new(dir.path().join("sh"))
            .args(&argv[1..])
            .env_clear()
            .env("PATH", dir.path())
            .output()
            .unwrap()
    });
}

/// The busybox image's root filesystem, unpacked: the wget branch runs in it with `chroot`,
/// as it runs in a busybox container (the static busybox's wget crashes on the host, where
/// glibc's name service configuration is not its own). `None` unless root.
fn busybox_root() -> Option<tempfile::TempDir> {
    if !is_root() {
        assert!(
            !fixtures::tools::real_tests_required(),
            "the wget branch runs as root (chroot)"
        );
        return None;
    }
    let tarball = fixtures::images::busybox_tarball().unwrap()?;
    let root = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(root.path())
        .status()
        .unwrap();
    assert!(status.success());
    Some(root)
}

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn the_probe_prints_the_status_with_busybox_wget_in_a_busybox_root() {
    let Some(root) = busybox_root() else { return };
    check_answers("busybox wget", |argv| {
        Command::new("/usr/sbin/chroot")
            .arg(root.path())
            .args(argv)
            .env_clear()
            .env("PATH", "/bin")
            .output()
            .unwrap()
    });
}

#[test]
fn a_container_without_any_client_says_so_with_its_own_exit_status() {
    // An empty PATH: only the shell itself, which finds no client.
    let argv = probe_args(9);
    let out = Command::new("/bin/sh")
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::try_from(NO_CLIENT).unwrap()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none of curl, wget or node"));
}
