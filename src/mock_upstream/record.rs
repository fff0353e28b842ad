//! What the mock upstream received: the last requests to the chat routes (all three formats)
//! and to Exa's `/search`, so tests can assert on what a client sent (image parts, tool
//! definitions, headers).
//!
//! Recording is on for [`super::MockUpstream::start`] and off for the CLI's [`super::run`]. It
//! keeps the JSON body each handler parses anyway (no second parse) in a bounded queue behind a
//! mutex, the last [`RECORDED_REQUESTS`] requests: one uncontended lock and a push per request,
//! nothing per streamed chunk.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use actix_web::HttpRequest;
use serde_json::Value;

/// How many requests a recording mock keeps (the oldest go first).
pub const RECORDED_REQUESTS: usize = 100;

/// One request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `POST`.
    pub method: String,
    /// The path as sent, e.g. `/v1/chat/completions` or
    /// `/v1beta/models/mock:streamGenerateContent` (percent-escapes left as they came).
    pub path: String,
    /// The query string without `?` (`alt=sse`), empty if none.
    pub query: String,
    /// Every header, by lowercase name (repeated headers joined by `, `; values not UTF-8 are
    /// converted lossily).
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `Value::Null` when the body was no JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// The bounded log of requests, shared by the workers.
#[derive(Debug)]
pub(super) struct Recorder {
    capacity: usize,
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    /// Keeps the last `capacity` requests; 0 records nothing.
    pub(super) fn new(capacity: usize) -> Recorder {
        Recorder {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Records `request` with its parsed `body`.
    pub(super) fn record(&self, request: &HttpRequest, body: Value) {
        if self.capacity == 0 {
            return;
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in request.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let entry = RecordedRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            query: request.query_string().to_owned(),
            headers,
            body,
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The recorded requests, oldest first.
    pub(super) fn all(&self) -> Vec<RecordedRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }

    pub(super) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
