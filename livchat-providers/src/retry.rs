//! The retry policy of every cloud call, after go-retryablehttp (what Terraform's providers
//! use): retry connection errors, 429 and 5xx except 501; honour `Retry-After` (seconds or an
//! HTTP date); otherwise back off exponentially up to a cap; bound the attempts.
//!
//! Hetzner also sends `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (a Unix
//! time at which the bucket is full again; it refills one request per second). On a 429
//! without `Retry-After` we wait for one request's worth of refill, not for the full reset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// How requests are timed out and retried. Tests shorten the delays; the defaults suit the
/// real APIs.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts of one request, the first included (>= 1).
    pub max_attempts: u32,
    /// First backoff delay when the server did not say how long to wait.
    pub base_delay: Duration,
    /// Cap of the exponential backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` we accept to sleep; a longer one ends retrying with
    /// [`crate::CloudError::RateLimited`] naming the wait, so a job never hangs silently.
    pub max_retry_after: Duration,
    /// Timeout of one whole request (connect, send, read the body).
    pub request_timeout: Duration,
    /// Timeout of establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1 for the first retry), without server hints:
    /// `base * 2^(retry-1)`, capped, with "equal jitter" (a random point in the upper half) so
    /// that many clients do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let raw = self.base_delay.saturating_mul(1u32 << exp);
        let capped = raw.min(self.max_delay);
        let half = capped / 2;
        let jitter = if half.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::random::<u64>() % (half.as_nanos() as u64 + 1))
        };
        half + jitter
    }
}

/// Whether an HTTP status is worth retrying: 429 and 5xx except 501 (Not Implemented will
/// not change).
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// The wait a response asks for: `Retry-After` as delta-seconds or as an HTTP date; else,
/// on a 429 carrying Hetzner's rate-limit headers with nothing remaining, the time for one
/// request to refill. `None` when the response says nothing usable.
pub fn server_requested_delay(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(d) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
    {
        return Some(d);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return rate_limit_refill_delay(headers, now);
    }
    None
}

/// Parses a `Retry-After` value: delta-seconds (`"2"`) or an HTTP date. A date in the past
/// means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them rather than fall back to backoff.
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        // `from_secs_f64` panics above u64::MAX seconds; such a wait is "too long" anyway.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Hetzner's bucket: when `RateLimit-Remaining` is 0, the time until one request is back,
/// estimated as (reset - now) / (limit - remaining), at least one second (the documented
/// refill rate is one per second).
pub fn rate_limit_refill_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let num = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let remaining = num("ratelimit-remaining")?;
    if remaining > 0 {
        return None;
    }
    let reset = num("ratelimit-reset")?;
    let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let until_reset = reset.saturating_sub(now_secs);
    let per_request = match num("ratelimit-limit") {
        Some(limit) if limit > 0 => until_reset / limit.max(1),
        _ => until_reset,
    };
    Some(Duration::from_secs(per_request.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_http_date_are_both_understood() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_retry_after_beyond_any_duration_is_the_longest_wait_not_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for huge in ["99999999999999999999", "1e300", "184467440737095516160.5"] {
            assert_eq!(parse_retry_after(huge, now), Some(Duration::MAX), "{huge}");
        }
        assert_eq!(
            parse_retry_after("0.25", now),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn only_429_and_5xx_other_than_501_are_retryable() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::BAD_GATEWAY));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!is_retryable_status(StatusCode::CONFLICT));
        assert!(!is_retryable_status(StatusCode::UNPROCESSABLE_ENTITY));
    }

    #[test]
    fn hetzner_rate_limit_headers_give_one_refill_interval() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[
            ("ratelimit-limit", "3600"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "4600"),
        ]);
        assert_eq!(
            server_requested_delay(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(Duration::from_secs(1))
        );
        let h = headers(&[
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1030"),
        ]);
        assert_eq!(
            rate_limit_refill_delay(&h, now),
            Some(Duration::from_secs(3))
        );
        let h = headers(&[("ratelimit-remaining", "5"), ("ratelimit-reset", "1030")]);
        assert_eq!(rate_limit_refill_delay(&h, now), None);
    }

    #[test]
    fn retry_after_wins_over_rate_limit_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[
            ("retry-after", "4"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1001"),
        ]);
        assert_eq!(
            server_requested_delay(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn backoff_grows_exponentially_and_stays_under_the_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d10 = p.backoff(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
        }
    }
}
