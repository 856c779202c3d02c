//! [`DnsClient`] for Cloudflare, with a scoped API token (Zone:Read, DNS:Edit).
//!
//! Requests are the `cloudflare` crate's endpoint specs (`ListZones`, `ListDnsRecords`,
//! `CreateDnsRecord`, `UpdateDnsRecord`, `DeleteDnsRecord`): their method, path, query and
//! JSON body are what we send. Two things of the crate are deliberately not used:
//! - its response types: `DnsRecord` deserialises `DnsContent`, which knows only
//!   A/AAAA/CNAME/NS/MX/TXT/SRV, so one CAA (or HTTPS, SVCB, ...) record in a zone fails the
//!   whole list (cloudflare-rs issue #219). Responses are read into the tolerant types below,
//!   which keep any record type by name with its content as text. Its `Zone` is also stricter
//!   than the API guarantees (required `account`, `meta`, `owner`...).
//! - its `async_api::Client`: `ApiFailure::Error(StatusCode, ApiErrors)` drops the headers,
//!   so `Retry-After` could not be honoured; and its `Credentials` keep the token in a plain
//!   `String`. Requests go through [`crate::http::Transport`] instead.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cloudflare::endpoints::dns::dns as cf;
use cloudflare::endpoints::zones::zone as cfz;
use cloudflare::framework::endpoint::RequestBody;
use cloudflare::framework::endpoint::spec::EndpointSpec;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;

use crate::dns::{Change, DnsClient, DnsRecord, Ensured, RecordOptions, RecordType, Zone};
use crate::error::{CloudError, Result, Service};
use crate::http::{Failure, Reply, Retrier, Transport};
use crate::retry::RetryPolicy;
use crate::validate;

/// Environment variable overriding the API base URL (for fakes, Prism, proxies).
pub const CLOUDFLARE_ENDPOINT_ENV: &str = "LIVCHAT_CLOUDFLARE_ENDPOINT";
/// The production API base URL.
pub const CLOUDFLARE_DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

const PER_PAGE: u32 = 100;
const MAX_PAGES: u32 = 200;

/// Settings of [`CloudflareDns`].
#[derive(Debug, Clone, PartialEq)]
pub struct CloudflareConfig {
    /// API base URL, `https://api.cloudflare.com/client/v4` unless overridden.
    pub endpoint: String,
    /// Timeouts and retries of each request.
    pub retry: RetryPolicy,
}

impl Default for CloudflareConfig {
    fn default() -> Self {
        CloudflareConfig {
            endpoint: CLOUDFLARE_DEFAULT_ENDPOINT.to_owned(),
            retry: RetryPolicy::default(),
        }
    }
}

impl CloudflareConfig {
    /// Defaults, with the endpoint from `LIVCHAT_CLOUDFLARE_ENDPOINT` when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`CloudflareConfig::from_env`] with the environment given as a function.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = CloudflareConfig::default();
        if let Some(e) = lookup(CLOUDFLARE_ENDPOINT_ENV).filter(|e| !e.trim().is_empty()) {
            c.endpoint = e.trim().to_owned();
        }
        c
    }
}

/// The content of a record we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordContent {
    /// An A record's address.
    A(Ipv4Addr),
    /// A CNAME's target host name.
    Cname(String),
}

/// Cloudflare DNS through the v4 API.
#[derive(Debug)]
pub struct CloudflareDns {
    http: Transport,
}

/// The v4 envelope, tolerant: only what we read.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    errors: Vec<Message>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Default, Deserialize)]
struct Message {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<Message>,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct RawZone {
    id: String,
    name: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRecord {
    /// Required by the spec, but Prism's generated examples omit it; a record without an id
    /// still lists, and any write to it is refused by id validation.
    #[serde(default)]
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Option<serde_json::Value>,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    proxied: Option<bool>,
    #[serde(default)]
    ttl: Option<f64>,
}

impl From<RawRecord> for DnsRecord {
    fn from(r: RawRecord) -> Self {
        let content = match (r.content, r.data) {
            (Some(serde_json::Value::String(s)), _) => s,
            (Some(v), _) if !v.is_null() => v.to_string(),
            (_, Some(d)) if !d.is_null() => d.to_string(),
            _ => String::new(),
        };
        DnsRecord {
            id: r.id,
            name: r.name,
            record_type: RecordType::parse(&r.kind),
            content,
            proxied: r.proxied,
            ttl: r
                .ttl
                .map(|t| t.clamp(0.0, u32::MAX as f64) as u32)
                .unwrap_or(1),
        }
    }
}

/// Cloudflare error codes we give a meaning to.
mod codes {
    /// Record quota of the zone reached.
    pub const RECORD_QUOTA: [i64; 2] = [81045, 81040];
    /// A conflicting record exists (A/AAAA/CNAME with that host, or an identical one).
    pub const CONFLICT: [i64; 6] = [81053, 81054, 81055, 81056, 81057, 81058];
    /// An identical record already exists.
    pub const IDENTICAL: [i64; 2] = [81057, 81058];
    /// Authentication or authorization.
    pub const AUTH: [i64; 5] = [10000, 9103, 9106, 9109, 6003];
}

fn first_error(reply: &Reply) -> Message {
    let body: ErrorEnvelope = serde_json::from_slice(&reply.body).unwrap_or_default();
    body.errors.into_iter().next().unwrap_or_else(|| Message {
        code: 0,
        message: reply.excerpt(),
    })
}

fn api_error(operation: &str, reply: Reply, name: Option<&str>) -> CloudError {
    let service = Service::Cloudflare;
    let status = reply.status;
    let m = first_error(&reply);
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || codes::AUTH.contains(&m.code)
    {
        return CloudError::InvalidToken {
            service,
            code: m.code.to_string(),
            message: m.message,
        };
    }
    if codes::RECORD_QUOTA.contains(&m.code) {
        return CloudError::LimitExceeded {
            service,
            code: m.code.to_string(),
            message: m.message,
        };
    }
    if codes::CONFLICT.contains(&m.code) {
        return CloudError::NameTaken {
            service,
            name: name.unwrap_or_default().to_owned(),
            message: format!("{} ({})", m.message, m.code),
        };
    }
    CloudError::Api {
        service,
        operation: operation.to_owned(),
        status: status.as_u16(),
        code: m.code.to_string(),
        message: m.message,
    }
}

/// Method, path with query, and body of one of the crate's endpoint specs.
struct Call {
    method: reqwest::Method,
    path: String,
    body: Option<Vec<u8>>,
}

fn call_of<E: EndpointSpec>(e: &E) -> Call {
    let mut path = e.path();
    if let Some(q) = e.query().filter(|q| !q.is_empty()) {
        path = format!("{path}?{q}");
    }
    let body = match e.body() {
        Some(RequestBody::Json(s)) => Some(s.into_bytes()),
        Some(RequestBody::Raw(b)) => Some(b),
        // No DNS endpoint we use is multipart.
        Some(RequestBody::MultiPart(_)) | None => None,
    };
    Call {
        method: e.method(),
        path,
        body,
    }
}

impl CloudflareDns {
    /// A client with this scoped token and configuration.
    pub fn new(token: SecretString, config: CloudflareConfig) -> Result<Self> {
        Ok(CloudflareDns {
            http: Transport::new(Service::Cloudflare, &config.endpoint, &token, config.retry)?,
        })
    }

    /// A client with the default configuration and the endpoint from
    /// `LIVCHAT_CLOUDFLARE_ENDPOINT`, when set.
    pub fn from_env(token: SecretString) -> Result<Self> {
        Self::new(token, CloudflareConfig::from_env())
    }

    async fn send(&self, operation: &str, call: &Call) -> Result<Reply> {
        self.http
            .request(
                operation,
                call.method.clone(),
                &call.path,
                &[],
                call.body.as_deref(),
                &|op, r| api_error(op, r, None),
            )
            .await
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        reply: &Reply,
    ) -> Result<Envelope<T>> {
        self.http.decode(operation, reply)
    }

    fn result<T>(&self, operation: &str, env: Envelope<T>) -> Result<T> {
        env.result.ok_or_else(|| CloudError::Decode {
            service: Service::Cloudflare,
            operation: operation.to_owned(),
            message: format!(
                "no result{}",
                env.errors
                    .first()
                    .map(|e| format!(": {} ({})", e.message, e.code))
                    .unwrap_or_default()
            ),
        })
    }

    async fn records(&self, zone: &Zone, name: Option<&str>) -> Result<Vec<DnsRecord>> {
        validate::path_id("zone id", &zone.id)?;
        let operation = "list DNS records";
        let mut out: Vec<DnsRecord> = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let call = call_of(&cf::ListDnsRecords {
                zone_identifier: &zone.id,
                params: cf::ListDnsRecordsParams {
                    name: name.map(str::to_owned),
                    page: Some(page),
                    per_page: Some(PER_PAGE),
                    ..Default::default()
                },
            });
            let reply = self.send(operation, &call).await?;
            if !reply.status.is_success() {
                return Err(self.zone_error(operation, zone, reply));
            }
            let env: Envelope<Vec<RawRecord>> = self.decode(operation, &reply)?;
            let info = env.result_info.as_ref().map(|i| (i.page, i.total_pages));
            let items = self.result(operation, env)?;
            let empty = items.is_empty();
            for r in items {
                let r = DnsRecord::from(r);
                // A server that repeats pages must not make us report records twice.
                if r.id.is_empty() || !out.iter().any(|o| o.id == r.id) {
                    out.push(r);
                }
            }
            // Stop unless the server paged as asked: one that ignores `page` (Prism's static
            // examples claim 100 pages) would otherwise make us fetch the same page again.
            match info {
                Some((Some(p), Some(total))) if !empty && p == page && page < total => page += 1,
                _ => break,
            }
        }
        if let Some(name) = name {
            out.retain(|r| r.name.eq_ignore_ascii_case(name));
        }
        Ok(out)
    }

    fn zone_error(&self, operation: &str, zone: &Zone, reply: Reply) -> CloudError {
        if reply.status == StatusCode::NOT_FOUND {
            return CloudError::ZoneNotFound {
                service: Service::Cloudflare,
                zone: zone.name.clone(),
            };
        }
        api_error(operation, reply, None)
    }

    /// POSTs a new record, retrying per policy; before each retry (and on "identical record
    /// exists"), looks for the record so a create whose answer was lost is not repeated.
    async fn create(
        &self,
        zone: &Zone,
        name: &str,
        content: cf::DnsContent,
        options: &RecordOptions,
        matches: &(dyn Fn(&DnsRecord) -> bool + Sync),
    ) -> Result<DnsRecord> {
        let operation = "create DNS record";
        let call = call_of(&cf::CreateDnsRecord {
            zone_identifier: &zone.id,
            params: cf::CreateDnsRecordParams {
                ttl: Some(options.ttl),
                priority: None,
                proxied: Some(options.proxied),
                name,
                content,
            },
        });
        let url = self.http.url(&call.path);
        let mut retrier = Retrier::new(&self.http.policy, Service::Cloudflare, operation);
        let find = || async {
            Ok::<_, CloudError>(
                self.records(zone, Some(name))
                    .await?
                    .into_iter()
                    .find(|r| matches(r)),
            )
        };
        loop {
            retrier.attempted();
            let failure: Failure = match self
                .http
                .attempt(&call.method, &url, &[], call.body.as_deref())
                .await
            {
                Ok(reply) if reply.status.is_success() => {
                    let env: Envelope<RawRecord> = self.decode(operation, &reply)?;
                    return Ok(self.result(operation, env)?.into());
                }
                Ok(reply) => {
                    if codes::IDENTICAL.contains(&first_error(&reply).code)
                        && let Some(r) = find().await?
                    {
                        return Ok(r);
                    }
                    return Err(if reply.status == StatusCode::NOT_FOUND {
                        self.zone_error(operation, zone, reply)
                    } else {
                        api_error(operation, reply, Some(name))
                    });
                }
                Err(f) => f,
            };
            let delay = retrier.after(failure, |r| api_error(operation, r, Some(name)))?;
            tokio::time::sleep(delay).await;
            if let Some(r) = find().await? {
                tracing::info!(%name, "create was answered late; the record exists");
                return Ok(r);
            }
        }
    }

    /// Replaces a record (PUT) by id; what `ensure_*` use when a record exists. Public so
    /// tests can drive the update call directly (Prism's examples carry no record id).
    pub async fn update_record(
        &self,
        zone: &Zone,
        id: &str,
        name: &str,
        content: RecordContent,
        options: &RecordOptions,
    ) -> Result<DnsRecord> {
        let name = Self::check_name(zone, name)?;
        Self::check_ttl(options)?;
        let content = match content {
            RecordContent::A(ip) => cf::DnsContent::A { content: ip },
            RecordContent::Cname(target) => {
                let target = target.trim_end_matches('.').to_ascii_lowercase();
                validate::host_name("target", &target)?;
                cf::DnsContent::CNAME { content: target }
            }
        };
        self.update(zone, id, &name, content, options).await
    }

    async fn update(
        &self,
        zone: &Zone,
        id: &str,
        name: &str,
        content: cf::DnsContent,
        options: &RecordOptions,
    ) -> Result<DnsRecord> {
        validate::path_id("zone id", &zone.id)?;
        validate::path_id("record id", id)?;
        let operation = "update DNS record";
        // PUT is idempotent: the retry policy may repeat it safely.
        let call = call_of(&cf::UpdateDnsRecord {
            zone_identifier: &zone.id,
            identifier: id,
            params: cf::UpdateDnsRecordParams {
                ttl: Some(options.ttl),
                proxied: Some(options.proxied),
                name,
                content,
            },
        });
        let reply = self.send(operation, &call).await?;
        if !reply.status.is_success() {
            return Err(api_error(operation, reply, Some(name)));
        }
        let env: Envelope<RawRecord> = self.decode(operation, &reply)?;
        Ok(self.result(operation, env)?.into())
    }

    fn check_name(zone: &Zone, name: &str) -> Result<String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        validate::record_name("name", &name)?;
        if !validate::in_zone(&name, &zone.name) {
            return Err(CloudError::InvalidInput {
                field: "name",
                reason: format!("{name:?} is not inside the zone {:?}", zone.name),
            });
        }
        Ok(name)
    }

    fn check_ttl(options: &RecordOptions) -> Result<()> {
        if options.ttl != 1 && !(30..=86_400).contains(&options.ttl) {
            return Err(CloudError::InvalidInput {
                field: "ttl",
                reason: format!(
                    "{} is not allowed: 1 (automatic) or 30-86400 seconds",
                    options.ttl
                ),
            });
        }
        Ok(())
    }

    fn same_options(r: &DnsRecord, options: &RecordOptions) -> bool {
        r.proxied.unwrap_or(false) == options.proxied && r.ttl == options.ttl
    }
}

#[async_trait]
impl DnsClient for CloudflareDns {
    async fn find_zone(&self, zone_name: &str) -> Result<Zone> {
        let zone_name = zone_name.trim_end_matches('.').to_ascii_lowercase();
        validate::host_name("zone", &zone_name)?;
        let operation = "find zone";
        let call = call_of(&cfz::ListZones {
            params: cfz::ListZonesParams {
                name: Some(zone_name.clone()),
                per_page: Some(50),
                ..Default::default()
            },
        });
        let reply = self.send(operation, &call).await?;
        if !reply.status.is_success() {
            return Err(api_error(operation, reply, None));
        }
        let env: Envelope<Vec<RawZone>> = self.decode(operation, &reply)?;
        let zones = self.result(operation, env)?;
        zones
            .into_iter()
            .find(|z| z.name.eq_ignore_ascii_case(&zone_name))
            .map(|z| Zone {
                id: z.id,
                name: z.name,
                status: z.status.unwrap_or_default(),
            })
            .ok_or(CloudError::ZoneNotFound {
                service: Service::Cloudflare,
                zone: zone_name,
            })
    }

    async fn list_records(&self, zone: &Zone) -> Result<Vec<DnsRecord>> {
        self.records(zone, None).await
    }

    async fn records_named(&self, zone: &Zone, name: &str) -> Result<Vec<DnsRecord>> {
        let name = Self::check_name(zone, name)?;
        self.records(zone, Some(&name)).await
    }

    async fn ensure_a_record(
        &self,
        zone: &Zone,
        name: &str,
        ipv4: Ipv4Addr,
        options: &RecordOptions,
    ) -> Result<Ensured> {
        let name = Self::check_name(zone, name)?;
        Self::check_ttl(options)?;
        let existing = self.records(zone, Some(&name)).await?;
        if let Some(c) = existing.iter().find(|r| r.record_type == RecordType::Cname) {
            return Err(CloudError::NameTaken {
                service: Service::Cloudflare,
                name,
                message: format!(
                    "it is a CNAME to {:?}; delete it first to point the name at an address",
                    c.content
                ),
            });
        }
        let want = ipv4.to_string();
        let a: Vec<&DnsRecord> = existing
            .iter()
            .filter(|r| r.record_type == RecordType::A)
            .collect();
        if let Some(same) = a
            .iter()
            .find(|r| r.content == want && Self::same_options(r, options))
        {
            return Ok(Ensured {
                record: (*same).clone(),
                change: Change::Unchanged,
            });
        }
        let content = cf::DnsContent::A { content: ipv4 };
        // Prefer the record that already has the address (only options differ).
        let target = a.iter().find(|r| r.content == want).or(a.first());
        match target {
            Some(r) => Ok(Ensured {
                record: self.update(zone, &r.id, &name, content, options).await?,
                change: Change::Updated,
            }),
            None => {
                let matches = |r: &DnsRecord| r.record_type == RecordType::A && r.content == want;
                Ok(Ensured {
                    record: self.create(zone, &name, content, options, &matches).await?,
                    change: Change::Created,
                })
            }
        }
    }

    async fn delete_record(&self, zone: &Zone, record_id: &str) -> Result<()> {
        validate::path_id("zone id", &zone.id)?;
        validate::path_id("record id", record_id)?;
        let operation = "delete DNS record";
        let call = call_of(&cf::DeleteDnsRecord {
            zone_identifier: &zone.id,
            identifier: record_id,
        });
        let reply = self.send(operation, &call).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(api_error(operation, reply, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_comes_from_the_given_environment_only() {
        let c = CloudflareConfig::from_lookup(|k| {
            (k == CLOUDFLARE_ENDPOINT_ENV).then(|| "http://127.0.0.1:9/client/v4".to_owned())
        });
        assert_eq!(c.endpoint, "http://127.0.0.1:9/client/v4");
        assert_eq!(
            CloudflareConfig::from_lookup(|_| None).endpoint,
            CLOUDFLARE_DEFAULT_ENDPOINT
        );
    }

    #[test]
    fn records_of_types_the_crate_does_not_model_still_parse() {
        let caa = serde_json::json!({
            "id": "372e67954025e0ba6aaa6d586b9e0b59", "name": "example.com", "type": "CAA",
            "content": "0 issue \"letsencrypt.org\"", "data": {"flags": 0, "tag": "issue", "value": "letsencrypt.org"},
            "proxiable": false, "proxied": false, "ttl": 3600
        });
        let r: DnsRecord = serde_json::from_value::<RawRecord>(caa).unwrap().into();
        assert_eq!(r.record_type, RecordType::Other("CAA".into()));
        assert_eq!(r.content, "0 issue \"letsencrypt.org\"");
        assert_eq!(r.ttl, 3600);
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let z = Zone {
            id: "z".into(),
            name: "example.com".into(),
            status: "active".into(),
        };
        assert_eq!(
            CloudflareDns::check_name(&z, "N8N.Example.com.").unwrap(),
            "n8n.example.com"
        );
        let e = CloudflareDns::check_name(&z, "n8n.example.org")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not inside the zone"), "{e}");
        let e = CloudflareDns::check_name(&z, "a;b.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid name"), "{e}");
    }
}
