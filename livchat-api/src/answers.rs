//! Answers of reads computed from the state alone (`GET /api/servers` and the like), kept as
//! serialized bytes while the state does not change: a list of a thousand servers is built and
//! serialized once per change of `state.json`, not once per request. Each answer carries an
//! `ETag`, so a client polling with `If-None-Match` gets `304 Not Modified` without a body.
//!
//! The key of freshness is the store's generation (`Orchestrator::state_generation`), which
//! changes with every write by any process; without one (no inotify) nothing is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// More distinct keys than this (server names asked for) and the table starts over.
const MAX_ANSWERS: usize = 4096;

struct Answer {
    generation: u64,
    body: Bytes,
    etag: HeaderValue,
}

/// The kept answers, by operation and request.
pub struct Answers {
    /// Tells this process's tags from those of an earlier run, whose generations restart.
    run: u64,
    kept: Mutex<HashMap<String, Answer>>,
}

impl Answers {
    pub fn new() -> Self {
        Answers {
            run: uuid::Uuid::new_v4().as_u64_pair().0,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The kept answer for `key` when the state has not changed since it was computed.
    pub fn fresh(&self, key: &str, generation: u64, request: &HeaderMap) -> Option<Response> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let answer = kept.get(key).filter(|a| a.generation == generation)?;
        Some(respond(answer, request))
    }

    /// Keeps `body` as the answer for `key` at `generation` (read before it was computed, so
    /// a change in between makes it stale, never a stale answer fresh) and answers with it.
    pub fn keep(&self, key: String, generation: u64, body: Bytes, request: &HeaderMap) -> Response {
        let etag = HeaderValue::from_str(&format!("\"{:016x}-{generation}\"", self.run))
            .unwrap_or_else(|_| unreachable!("hex digits and a dash"));
        let answer = Answer {
            generation,
            body,
            etag,
        };
        let response = respond(&answer, request);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_ANSWERS && !kept.contains_key(&key) {
            kept.clear();
        }
        kept.insert(key, answer);
        response
    }
}

impl Default for Answers {
    fn default() -> Self {
        Self::new()
    }
}

fn respond(answer: &Answer, request: &HeaderMap) -> Response {
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == answer.etag);
    let etag = (header::ETAG, answer.etag.clone());
    if matches {
        return (StatusCode::NOT_MODIFIED, [etag]).into_response();
    }
    let json = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ([etag, json], answer.body.clone()).into_response()
}

/// The key of a request: the operation and its request object, which names every input.
pub fn key(operation: &str, input: &serde_json::Value) -> String {
    format!("{operation} {input}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(tag: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag.clone());
        h
    }

    #[test]
    fn an_answer_is_fresh_only_at_its_generation() {
        let answers = Answers::new();
        let body = Bytes::from_static(b"[1]");
        let first = answers.keep("k".into(), 3, body, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        assert!(answers.fresh("k", 3, &HeaderMap::new()).is_some());
        assert!(answers.fresh("k", 4, &HeaderMap::new()).is_none());
        assert!(answers.fresh("other", 3, &HeaderMap::new()).is_none());
    }

    #[test]
    fn a_matching_if_none_match_gets_304_and_another_tag_the_body() {
        let answers = Answers::new();
        let first = answers.keep("k".into(), 1, Bytes::from_static(b"[]"), &HeaderMap::new());
        let tag = first.headers()[header::ETAG].clone();
        let again = answers.fresh("k", 1, &if_none_match(&tag)).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = HeaderValue::from_static("\"0000000000000000-1\"");
        let full = answers.fresh("k", 1, &if_none_match(&other)).unwrap();
        assert_eq!(full.status(), StatusCode::OK);
    }

    #[test]
    fn tags_of_two_runs_differ_at_the_same_generation() {
        let a = Answers::new().keep("k".into(), 0, Bytes::new(), &HeaderMap::new());
        let b = Answers::new().keep("k".into(), 0, Bytes::new(), &HeaderMap::new());
        assert_ne!(a.headers()[header::ETAG], b.headers()[header::ETAG]);
    }
}
