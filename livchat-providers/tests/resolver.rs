//! `UdpResolver` against a real DNS server: Debian's dnsmasq on loopback answering only the
//! names the test sets (real-parts.md, "A real DNS server on loopback"). Nothing reaches
//! public DNS: dnsmasq has no upstream (`--no-resolv`) and answers for `example.com` only.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use livchat_providers::{NameResolver, UdpResolver};

struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// dnsmasq on 127.0.0.1 and a free port, answering `records` (name, address) and NXDOMAIN
    /// for every other name under example.com; `None` when dnsmasq is not installed and real
    /// tests are not required.
    fn start(records: &[(&str, &str)]) -> Option<Self> {
        let dnsmasq = fixtures::tools::require("dnsmasq")?;
        let dir = tempfile::tempdir().unwrap();
        // A port that was free a moment ago; dnsmasq binds it itself.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(dnsmasq);
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local=/example.com/",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (name, ip) in records {
            cmd.arg(format!("--address=/{name}/{ip}"));
        }
        let child = cmd.spawn().expect("start dnsmasq");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Some(Dnsmasq {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn resolves_what_the_dns_server_answers_and_nothing_for_unknown_names() {
    let Some(dns) = Dnsmasq::start(&[("n8n.lab.example.com", "203.0.113.10")]) else {
        return;
    };
    let resolver = UdpResolver {
        timeout: Duration::from_millis(500),
        attempts: 20,
        ..UdpResolver::new(dns.addr)
    };
    // The first questions may arrive before dnsmasq listens: the resolver asks again.
    assert_eq!(
        resolver.resolve_a("n8n.lab.example.com").await.unwrap(),
        vec![Ipv4Addr::new(203, 0, 113, 10)]
    );
    assert_eq!(
        resolver.resolve_a("N8N.lab.example.com.").await.unwrap(),
        vec![Ipv4Addr::new(203, 0, 113, 10)],
        "names are case-insensitive and a trailing dot is fine"
    );
    assert!(
        resolver
            .resolve_a("webhook-n8n.lab.example.com")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_dns_server_that_does_not_answer_is_an_error_naming_it() {
    // A UDP port nobody listens on: the resolver gives up after its attempts.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let resolver = UdpResolver {
        timeout: Duration::from_millis(200),
        attempts: 2,
        ..UdpResolver::new(addr)
    };
    let err = resolver.resolve_a("n8n.example.com").await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
