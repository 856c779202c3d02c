//! The `DnsClient` trait and its vocabulary: zones and records the core reads and writes.
//!
//! Records are modelled tolerantly: any record type (CAA, HTTPS, SVCB, ...) lists fine, with
//! its content as text, because one record the client does not model must never make a zone
//! unreadable (cloudflare-rs issue #219).

use std::fmt;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A DNS zone (a domain the account manages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// The vendor's zone id.
    pub id: String,
    /// The zone's name (`example.com`).
    pub name: String,
    /// The vendor's status (`active`, `pending`...).
    pub status: String,
}

/// A record type. Types we do not write are kept by name. Serialized as the vendor's wire name
/// (`"A"`, `"CAA"`), so JSON output reads like the DNS it describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Anything else (`TXT`, `MX`, `CAA`, `HTTPS`...), upper case as the vendor sends it.
    Other(String),
}

impl RecordType {
    /// Parses the vendor's type name.
    pub fn parse(name: &str) -> Self {
        match name {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            other => RecordType::Other(other.to_owned()),
        }
    }

    /// The type's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Other(s) => s,
        }
    }
}

impl From<String> for RecordType {
    fn from(name: String) -> Self {
        RecordType::parse(&name)
    }
}

impl From<RecordType> for String {
    fn from(t: RecordType) -> Self {
        t.as_str().to_owned()
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The vendor's record id.
    pub id: String,
    /// Fully qualified name (`n8n.example.com`).
    pub name: String,
    /// Type.
    pub record_type: RecordType,
    /// Content as text (the address, the target, or the vendor's rendering of the data).
    pub content: String,
    /// Whether traffic goes through the vendor's proxy (Cloudflare's orange cloud), if the
    /// type can be proxied.
    pub proxied: Option<bool>,
    /// TTL in seconds; 1 means "automatic" at Cloudflare.
    pub ttl: u32,
}

/// Options of records we write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOptions {
    /// Proxy through the vendor. Off by default: Traefik must answer the ACME HTTP challenge
    /// itself, and SSH to the name must reach the server.
    pub proxied: bool,
    /// TTL in seconds; 1 is "automatic".
    pub ttl: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            proxied: false,
            ttl: 1,
        }
    }
}

/// What an `ensure_*` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The record did not exist and was created.
    Created,
    /// The record existed with other content or options and was updated.
    Updated,
    /// The record already was as asked.
    Unchanged,
}

/// The outcome of an `ensure_*` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ensured {
    /// The record as it now is.
    pub record: DnsRecord,
    /// What was done.
    pub change: Change,
}

/// A DNS provider, reached with a scoped API token.
///
/// Names are fully qualified (`n8n.example.com`) and must lie inside the zone; they are
/// validated (RFC 1123 labels, optionally a leading `*`) before anything is sent.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DnsClient: Send + Sync {
    /// The zone with this exact name, or `ZoneNotFound`.
    async fn find_zone(&self, zone_name: &str) -> Result<Zone>;

    /// Every record of the zone, of every type, including those the vendor SDK does not
    /// model (CAA, HTTPS...).
    async fn list_records(&self, zone: &Zone) -> Result<Vec<DnsRecord>>;

    /// The records with this fully qualified name (all types).
    async fn records_named(&self, zone: &Zone, name: &str) -> Result<Vec<DnsRecord>>;

    /// Makes `name` an A record pointing at `ipv4`: creates it, updates the existing A record
    /// of that name, or leaves it unchanged. Fails (changing nothing) if the name holds a
    /// CNAME, which cannot coexist with an A record.
    async fn ensure_a_record(
        &self,
        zone: &Zone,
        name: &str,
        ipv4: Ipv4Addr,
        options: &RecordOptions,
    ) -> Result<Ensured>;

    /// Deletes a record by id. A missing record is a success.
    async fn delete_record(&self, zone: &Zone, record_id: &str) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_serialize_as_their_wire_names() {
        for (t, wire) in [
            (RecordType::A, "\"A\""),
            (RecordType::Aaaa, "\"AAAA\""),
            (RecordType::Other("CAA".into()), "\"CAA\""),
        ] {
            assert_eq!(serde_json::to_string(&t).unwrap(), wire);
            assert_eq!(serde_json::from_str::<RecordType>(wire).unwrap(), t);
        }
    }
}
