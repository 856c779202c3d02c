//! Rate limits per bearer token: token buckets for all requests, for job-creating requests and
//! for server creations (the one that spends money), each configurable. Buckets are keyed by a
//! keyed hash of the token, so the token itself is not kept here.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests of a class a token may make per period.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub requests: u32,
    pub per: Duration,
}

/// The classes of requests that are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Any,
    Job,
    ServerCreate,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every token seen.
#[derive(Debug)]
pub struct RateLimits {
    any: Limit,
    job: Limit,
    server_create: Limit,
    hasher: RandomState,
    buckets: Mutex<HashMap<(u64, Class), Bucket>>,
}

impl RateLimits {
    pub fn new(any: Limit, job: Limit, server_create: Limit) -> Self {
        Self {
            any,
            job,
            server_create,
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, class: Class) -> Limit {
        match class {
            Class::Any => self.any,
            Class::Job => self.job,
            Class::ServerCreate => self.server_create,
        }
    }

    /// Takes one request of `class` for `token`; `Err(seconds)` says when one is available.
    /// Several classes are taken together or not at all.
    pub fn take(&self, token: &str, classes: &[Class]) -> Result<(), u64> {
        let key = self.hasher.hash_one(token);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            // Only valid tokens reach here, so this is stale buckets of rotated tokens.
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(86_400));
        }
        let mut wait = 0u64;
        for &class in classes {
            let limit = self.limit(class);
            let capacity = f64::from(limit.requests);
            let rate = capacity / limit.per.as_secs_f64().max(1e-9);
            let bucket = buckets.entry((key, class)).or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
            let elapsed = now.duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
            bucket.updated = now;
            if bucket.tokens < 1.0 {
                let secs = if rate > 0.0 {
                    ((1.0 - bucket.tokens) / rate).ceil() as u64
                } else {
                    limit.per.as_secs()
                };
                wait = wait.max(secs.max(1));
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for &class in classes {
            if let Some(b) = buckets.get_mut(&(key, class)) {
                b.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        let hour = Duration::from_secs(3600);
        RateLimits::new(
            Limit {
                requests: 100,
                per: Duration::from_secs(60),
            },
            Limit {
                requests: 10,
                per: hour,
            },
            Limit {
                requests: 5,
                per: hour,
            },
        )
    }

    #[test]
    fn the_sixth_server_creation_in_an_hour_waits_and_says_how_long() {
        let l = limits();
        let classes = [Class::Any, Class::Job, Class::ServerCreate];
        for _ in 0..5 {
            l.take("t", &classes).unwrap();
        }
        let wait = l.take("t", &classes).unwrap_err();
        assert!((1..=720).contains(&wait), "{wait}");
        // Other job kinds and other tokens are not held back by it.
        l.take("t", &[Class::Any, Class::Job]).unwrap();
        l.take("other", &classes).unwrap();
    }

    #[test]
    fn a_refused_request_takes_nothing_from_the_other_buckets() {
        let l = limits();
        for _ in 0..5 {
            l.take("t", &[Class::ServerCreate]).unwrap();
        }
        for _ in 0..20 {
            assert!(l.take("t", &[Class::Job, Class::ServerCreate]).is_err());
        }
        for _ in 0..10 {
            l.take("t", &[Class::Job]).unwrap();
        }
    }
}
