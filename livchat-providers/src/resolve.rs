//! Checking that names resolve: `NameResolver`, and a minimal DNS client over UDP (RFC 1035:
//! one A question, recursion desired) that asks one configured server. Used for servers whose
//! DNS records the user creates by hand (`--dns manual`): before an app is deployed, its names
//! must point at the server.
//!
//! The resolver's address is configuration (`LIVCHAT_DNS_RESOLVER`, else the first
//! `nameserver` of `/etc/resolv.conf`), so tests point it at a DNS server of their own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;

/// Why a name could not be looked up (a name that does not exist is not an error: it has no
/// addresses).
#[derive(Debug, thiserror::Error)]
#[error("could not resolve {name} through the DNS server {server}: {reason}")]
pub struct ResolveError {
    pub name: String,
    pub server: String,
    pub reason: String,
}

/// Looks up the IPv4 addresses of a name.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait NameResolver: Send + Sync {
    /// The A records of `name`; empty when it does not exist or has none.
    async fn resolve_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, ResolveError>;
}

/// Asks one DNS server over UDP; each question is sent up to `attempts` times.
#[derive(Debug, Clone)]
pub struct UdpResolver {
    pub server: SocketAddr,
    pub timeout: Duration,
    pub attempts: u32,
}

impl UdpResolver {
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            timeout: Duration::from_secs(2),
            attempts: 3,
        }
    }

    /// The first `nameserver` of `/etc/resolv.conf`, port 53.
    pub fn system() -> Result<Self, ResolveError> {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .find_map(|a| a.trim().parse::<IpAddr>().ok())
            .map(|ip| Self::new(SocketAddr::new(ip, 53)))
            .ok_or_else(|| ResolveError {
                name: String::new(),
                server: "/etc/resolv.conf".into(),
                reason: "no nameserver line; set LIVCHAT_DNS_RESOLVER=IP:PORT".into(),
            })
    }

    fn error(&self, name: &str, reason: impl Into<String>) -> ResolveError {
        ResolveError {
            name: name.to_string(),
            server: self.server.to_string(),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl NameResolver for UdpResolver {
    async fn resolve_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, ResolveError> {
        let id: u16 = rand::random();
        let query = encode_query(id, name).map_err(|r| self.error(name, r))?;
        let bind: SocketAddr = if self.server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| self.error(name, e.to_string()))?;
        socket
            .connect(self.server)
            .await
            .map_err(|e| self.error(name, e.to_string()))?;
        let mut last = String::from("no answer");
        for _ in 0..self.attempts.max(1) {
            // A refusal (ICMP port unreachable from an earlier attempt) surfaces on the next
            // send or recv: a server that is starting is asked again after a pause.
            if let Err(e) = socket.send(&query).await {
                last = e.to_string();
                tokio::time::sleep(self.timeout).await;
                continue;
            }
            let mut buf = [0u8; 1500];
            match tokio::time::timeout(self.timeout, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => match decode_answer(id, &buf[..n]) {
                    Ok(Some(addrs)) => return Ok(addrs),
                    // Not the answer to this question (a late reply to an earlier attempt).
                    Ok(None) => continue,
                    Err(reason) => return Err(self.error(name, reason)),
                },
                Ok(Err(e)) => {
                    last = e.to_string();
                    tokio::time::sleep(self.timeout).await;
                }
                Err(_) => last = format!("no answer within {:?}", self.timeout),
            }
        }
        Err(self.error(name, last))
    }
}

/// A query for the A records of `name` (recursion desired).
fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err("not a DNS name".into());
    }
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} has an empty or too long label"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(q)
}

/// The A records of an answer; `None` when the message answers another question id.
fn decode_answer(id: u16, msg: &[u8]) -> Result<Option<Vec<Ipv4Addr>>, String> {
    let short = || "truncated answer".to_string();
    if msg.len() < 12 {
        return Err(short());
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return Ok(None);
    }
    match msg[3] & 0x0f {
        0 => {}
        3 => return Ok(Some(Vec::new())), // NXDOMAIN: the name does not exist.
        rcode => return Err(format!("the server answered with error code {rcode}")),
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    let (questions, answers) = (count(4), count(6));
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(msg, pos).ok_or_else(short)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos).ok_or_else(short)?;
        let header = msg.get(pos..pos + 10).ok_or_else(short)?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let data = msg.get(pos + 10..pos + 10 + len).ok_or_else(short)?;
        if rtype == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Ok(Some(addrs))
}

/// The position after a (possibly compressed) name starting at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_the_rfc_1035_wire_format() {
        let q = encode_query(0x1234, "n8n.example.com.").unwrap();
        let mut expected = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x03n8n\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(q, expected);
        assert!(encode_query(1, "a..b").is_err());
    }

    #[test]
    fn answers_with_compressed_names_decode_and_other_ids_are_ignored() {
        let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x03n8n\x07example\x03com\x00\x00\x01\x00\x01");
        for ip in [[203, 0, 113, 10], [203, 0, 113, 11]] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            msg.extend_from_slice(&ip);
        }
        assert_eq!(
            decode_answer(0x1234, &msg).unwrap(),
            Some(vec![
                Ipv4Addr::new(203, 0, 113, 10),
                Ipv4Addr::new(203, 0, 113, 11)
            ])
        );
        assert_eq!(decode_answer(0x9999, &msg).unwrap(), None);
        assert!(decode_answer(0x1234, &msg[..msg.len() - 2]).is_err());
    }
}
