//! The mock upstream's Exa search API, `POST /search` (point an Exa client's base URL at
//! `http://127.0.0.1:{port}`).
//!
//! # Request
//! Exa's body: `{query, numResults?, type?, contents?: {text?, highlights?, summary?}}` (the
//! content options may also stand at the top level, as older clients send them), header
//! `x-api-key`. Each content option is `true`, `false` or an object: `text: {maxCharacters}`,
//! `highlights: {highlightsPerUrl, query}` (`maxCharacters`, `numSentences` are accepted and
//! ignored), `summary: {query}`. Other fields (`includeDomains`, `category`, dates, …) are
//! accepted and ignored.
//!
//! # Response
//! `{requestId, resolvedSearchType, results, costDollars: {total}}`, deterministic for a query:
//! result `i` (1-based) is `{id, url, title, publishedDate, author}` with
//! `url` = `id` = `https://example.com/{slug}/{i}` (the slug: the query's lowercase ASCII
//! letters and digits, other runs as `-`), `title: "Result {i} for {query}"`,
//! `publishedDate: "2025-01-01T00:00:00.000Z"`, `author: "Mock Author {i}"`, plus what
//! `contents` asked for: `text` (contains the query; cut to `maxCharacters`), `highlights` and
//! `highlightScores` (`highlightsPerUrl`, default 1), `summary`. Without `contents` the results
//! carry metadata only. `requestId` is 32 hex digits of the SHA-256 of the body;
//! `resolvedSearchType` is `neural` for `type: "auto"` (the default) and the type itself
//! otherwise; `costDollars.total` is a fixed 0.005.
//!
//! # Errors
//! Exa's error body, `{"requestId", "error", "tag"}`: 401 `INVALID_API_KEY` without a non-empty
//! `x-api-key` or with the key named by the `reject_key` knob; 400 `INVALID_REQUEST_BODY` for a
//! body that is no JSON object or has no non-empty string `query`, 400 `INVALID_NUM_RESULTS`
//! for a `numResults` outside 1–100.
//!
//! # Knobs
//! In the `x-mock` header (`key=value,…`; unknown keys get a 400): `ttft_ms` (wait before
//! answering, errors included), `status` (answer that status with Exa's error body and the tag
//! Exa uses for it, after the key check), `retry_after` (with `status`: a `retry-after` header,
//! in seconds), `reject_key=KEY` (answer 401 for that key). Requests are recorded (see the
//! parent module) but do not count in [`super::MockUpstream::requests`], which counts chat
//! requests.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::record::Recorder;
use super::{KNOB_HEADER, set_retry_after};

/// The route served.
pub const SEARCH_PATH: &str = "/search";
/// The header Exa reads the API key from.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Results when the request names no `numResults`.
pub const DEFAULT_RESULTS: u64 = 10;
/// The most results one search returns.
pub const MAX_RESULTS: u64 = 100;
/// The `publishedDate` of every result.
pub const PUBLISHED_DATE: &str = "2025-01-01T00:00:00.000Z";

/// Registers `POST /search`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(SEARCH_PATH, web::post().to(search));
}

/// `POST /search`.
async fn search(request: HttpRequest, body: Bytes, recorder: web::Data<Recorder>) -> HttpResponse {
    let request_id = request_id(&body);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    recorder.record(&request, parsed.clone().unwrap_or(Value::Null));
    let knobs = match ExaKnobs::from_request(&request) {
        Ok(knobs) => knobs,
        Err(message) => {
            return exa_error(StatusCode::BAD_REQUEST, &request_id, &message, None);
        }
    };
    if !knobs.ttft.is_zero() {
        tokio::time::sleep(knobs.ttft).await;
    }
    let key = request
        .headers()
        .get(API_KEY_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .unwrap_or_default();
    if key.is_empty() || knobs.reject_key.as_deref() == Some(key.as_str()) {
        return exa_error(
            StatusCode::UNAUTHORIZED,
            &request_id,
            "Invalid API key",
            None,
        );
    }
    if let Some(status) = knobs.status.filter(|s| !s.is_success()) {
        let message = format!("mock error (HTTP {})", status.as_u16());
        let mut response = exa_error(status, &request_id, &message, None);
        set_retry_after(&mut response, knobs.retry_after);
        return response;
    }
    match parsed
        .as_ref()
        .ok_or_else(|| Rejection::body("Invalid request body | the body is no JSON"))
        .and_then(SearchRequest::parse)
    {
        Ok(search) => HttpResponse::Ok().json(search.response(&request_id)),
        Err(rejection) => exa_error(
            StatusCode::BAD_REQUEST,
            &request_id,
            &rejection.message,
            Some(rejection.tag),
        ),
    }
}

/// 32 hex digits of the SHA-256 of the body, Exa's `requestId` shape.
fn request_id(body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    digest.chars().take(32).collect()
}

/// Exa's error body, `{"requestId", "error", "tag"}`, the tag chosen by the status unless given.
fn exa_error(
    status: StatusCode,
    request_id: &str,
    message: &str,
    tag: Option<&str>,
) -> HttpResponse {
    let tag = tag.unwrap_or(match status.as_u16() {
        400 => "INVALID_REQUEST_BODY",
        401 => "INVALID_API_KEY",
        402 => "NO_MORE_CREDITS",
        403 => "ACCESS_DENIED",
        404 => "NOT_FOUND",
        429 => "RATE_LIMIT_EXCEEDED",
        _ => "INTERNAL_ERROR",
    });
    HttpResponse::build(status).json(json!({
        "requestId": request_id,
        "error": message,
        "tag": tag,
    }))
}

// ---- knobs ----

/// The behaviour asked for by one search request (the `x-mock` header).
#[derive(Debug, Default, PartialEq)]
struct ExaKnobs {
    ttft: Duration,
    status: Option<StatusCode>,
    retry_after: Option<u64>,
    reject_key: Option<String>,
}

impl ExaKnobs {
    fn from_request(request: &HttpRequest) -> Result<ExaKnobs, String> {
        match request.headers().get(KNOB_HEADER) {
            Some(value) => Self::parse(&String::from_utf8_lossy(value.as_bytes())),
            None => Ok(ExaKnobs::default()),
        }
    }

    fn parse(spec: &str) -> Result<ExaKnobs, String> {
        let mut knobs = ExaKnobs::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None => (item, ""),
            };
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("mock knob `{key}`: not a whole number"))
            };
            match key {
                "ttft_ms" => knobs.ttft = Duration::from_millis(number()?),
                "status" => {
                    let code = u16::try_from(number()?).map_err(|e| e.to_string())?;
                    knobs.status = Some(
                        StatusCode::from_u16(code)
                            .map_err(|_| format!("mock knob `status`: {code} is no status"))?,
                    );
                }
                "retry_after" => knobs.retry_after = Some(number()?),
                "reject_key" if !value.is_empty() => knobs.reject_key = Some(value.to_owned()),
                "reject_key" => return Err("mock knob `reject_key` needs a value".to_owned()),
                _ => return Err(format!("unknown mock knob `{key}` for Exa")),
            }
        }
        Ok(knobs)
    }
}

// ---- the search ----

/// Why a body was refused: Exa's tag and message.
struct Rejection {
    tag: &'static str,
    message: String,
}

impl Rejection {
    fn body(message: &str) -> Rejection {
        Rejection {
            tag: "INVALID_REQUEST_BODY",
            message: message.to_owned(),
        }
    }
}

/// A content option: not asked for, or asked for with its options (`{}` for `true`).
fn content_option(body: &Value, name: &str) -> Option<Value> {
    let option = body
        .get("contents")
        .and_then(|contents| contents.get(name))
        .or_else(|| body.get(name))?;
    match option {
        Value::Bool(true) => Some(json!({})),
        Value::Object(_) => Some(option.clone()),
        _ => None,
    }
}

/// A search, read from Exa's request body.
#[derive(Debug)]
struct SearchRequest {
    query: String,
    num_results: u64,
    search_type: String,
    text: Option<Value>,
    highlights: Option<Value>,
    summary: Option<Value>,
}

impl SearchRequest {
    fn parse(body: &Value) -> Result<SearchRequest, Rejection> {
        if !body.is_object() {
            return Err(Rejection::body(
                "Invalid request body | Validation error: expected an object",
            ));
        }
        let query = match body.get("query") {
            Some(Value::String(query)) if !query.trim().is_empty() => query.clone(),
            Some(Value::String(_)) => {
                return Err(Rejection::body(
                    "Invalid request body | Validation error: query must not be empty",
                ));
            }
            None | Some(Value::Null) => {
                return Err(Rejection::body(
                    "Invalid request body | Validation error: Invalid input: expected string, \
                     received undefined at \"query\"",
                ));
            }
            Some(_) => {
                return Err(Rejection::body(
                    "Invalid request body | Validation error: Invalid input: expected string at \
                     \"query\"",
                ));
            }
        };
        let num_results = match body.get("numResults") {
            None | Some(Value::Null) => DEFAULT_RESULTS,
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=MAX_RESULTS).contains(n))
                .ok_or_else(|| Rejection {
                    tag: "INVALID_NUM_RESULTS",
                    message: format!("numResults must be between 1 and {MAX_RESULTS}"),
                })?,
        };
        let search_type = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("auto")
            .to_owned();
        Ok(SearchRequest {
            query,
            num_results,
            search_type,
            text: content_option(body, "text"),
            highlights: content_option(body, "highlights"),
            summary: content_option(body, "summary"),
        })
    }

    fn response(&self, request_id: &str) -> Value {
        let results: Vec<Value> = (1..=self.num_results).map(|i| self.result(i)).collect();
        let resolved = if self.search_type == "auto" {
            "neural"
        } else {
            self.search_type.as_str()
        };
        json!({
            "requestId": request_id,
            "resolvedSearchType": resolved,
            "results": results,
            "costDollars": {"total": 0.005},
        })
    }

    /// Result `i` (1-based).
    fn result(&self, i: u64) -> Value {
        let query = &self.query;
        let url = format!("https://example.com/{}/{i}", slug(query));
        let mut result = Map::new();
        result.insert("id".to_owned(), json!(url));
        result.insert("url".to_owned(), json!(url));
        result.insert("title".to_owned(), json!(format!("Result {i} for {query}")));
        result.insert("publishedDate".to_owned(), json!(PUBLISHED_DATE));
        result.insert("author".to_owned(), json!(format!("Mock Author {i}")));
        if let Some(options) = &self.text {
            let text = format!(
                "Result {i} for {query}. This page of the mock Exa index is about {query}; it is \
                 result {i} of {}.",
                self.num_results
            );
            let text = match options.get("maxCharacters").and_then(Value::as_u64) {
                Some(max) => text
                    .chars()
                    .take(usize::try_from(max).unwrap_or(usize::MAX))
                    .collect(),
                None => text,
            };
            result.insert("text".to_owned(), json!(text));
        }
        if let Some(options) = &self.highlights {
            let count = options
                .get("highlightsPerUrl")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 10);
            let about = options
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or(query);
            let highlights: Vec<String> = (1..=count)
                .map(|j| format!("Highlight {j} of result {i}: {about}."))
                .collect();
            let scores: Vec<f64> = (1..=count).map(|j| 1.0 / (i + j) as f64).collect();
            result.insert("highlights".to_owned(), json!(highlights));
            result.insert("highlightScores".to_owned(), json!(scores));
        }
        if let Some(options) = &self.summary {
            let summary = match options.get("query").and_then(Value::as_str) {
                Some(about) => format!("Summary of result {i} for {query}, on {about}."),
                None => format!("Summary of result {i} for {query}."),
            };
            result.insert("summary".to_owned(), json!(summary));
        }
        Value::Object(result)
    }
}

/// The query's lowercase ASCII letters and digits, other runs as one `-` (`query` if empty).
fn slug(query: &str) -> String {
    let mut slug = String::with_capacity(query.len());
    for c in query.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "query".to_owned()
    } else {
        slug.chars().take(60).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_upstream::MockUpstream;

    fn url(mock: &MockUpstream) -> String {
        format!("http://127.0.0.1:{}{SEARCH_PATH}", mock.port())
    }

    async fn post(
        mock: &MockUpstream,
        key: Option<&str>,
        knobs: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(url(mock)).json(&body);
        if let Some(key) = key {
            request = request.header(API_KEY_HEADER, key);
        }
        if let Some(knobs) = knobs {
            request = request.header(KNOB_HEADER, knobs);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn a_search_answers_ten_deterministic_results_with_metadata_only_by_default() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post(&mock, Some("k"), None, json!({"query": "Rust async!"})).await;
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 10);
        assert_eq!(
            results[0],
            json!({
                "id": "https://example.com/rust-async/1",
                "url": "https://example.com/rust-async/1",
                "title": "Result 1 for Rust async!",
                "publishedDate": PUBLISHED_DATE,
                "author": "Mock Author 1",
            })
        );
        assert_eq!(results[9]["title"], "Result 10 for Rust async!");
        assert_eq!(body["resolvedSearchType"], "neural");
        let id = body["requestId"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        // The same request gets the same answer.
        let (_, again) = post(&mock, Some("k"), None, json!({"query": "Rust async!"})).await;
        assert_eq!(again, body);
        // Requests are recorded but are no chat requests.
        let recorded = mock.last_recorded(SEARCH_PATH).unwrap();
        assert_eq!(recorded.body, json!({"query": "Rust async!"}));
        assert_eq!(recorded.header("X-Api-Key"), Some("k"));
        assert_eq!(mock.requests(), 0);
        mock.stop().await;
    }

    #[tokio::test]
    async fn num_results_and_contents_are_honoured() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post(
            &mock,
            Some("k"),
            None,
            json!({
                "query": "rust",
                "numResults": 3,
                "type": "keyword",
                "contents": {
                    "text": {"maxCharacters": 20},
                    "highlights": {"highlightsPerUrl": 2},
                    "summary": {"query": "speed"},
                },
            }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["resolvedSearchType"], "keyword");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        let third = &results[2];
        assert_eq!(third["text"], "Result 3 for rust. T");
        assert_eq!(
            third["highlights"],
            json!([
                "Highlight 1 of result 3: rust.",
                "Highlight 2 of result 3: rust."
            ])
        );
        assert_eq!(third["highlightScores"].as_array().unwrap().len(), 2);
        assert_eq!(third["summary"], "Summary of result 3 for rust, on speed.");

        // Top-level options, as older clients send them; `text: true` is the whole text.
        let (_, body) = post(
            &mock,
            Some("k"),
            None,
            json!({"query": "rust", "numResults": 100, "text": true}),
        )
        .await;
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 100);
        assert!(results[99]["text"].as_str().unwrap().contains("about rust"));
        assert!(results[99].get("highlights").is_none());

        for bad in [json!(0), json!(101), json!("5")] {
            let (status, body) = post(
                &mock,
                Some("k"),
                None,
                json!({"query": "rust", "numResults": bad}),
            )
            .await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(body["tag"], "INVALID_NUM_RESULTS");
        }
        let (status, body) = post(&mock, Some("k"), None, json!({"numResults": 1})).await;
        assert_eq!(status, 400);
        assert_eq!(body["tag"], "INVALID_REQUEST_BODY");
        assert!(body["requestId"].is_string());
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_missing_empty_or_rejected_key_gets_exas_401() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let query = json!({"query": "rust"});
        for (key, knobs) in [
            (None, None),
            (Some(" "), None),
            (Some("revoked"), Some("reject_key=revoked")),
        ] {
            let (status, body) = post(&mock, key, knobs, query.clone()).await;
            assert_eq!(status, 401, "{key:?}");
            assert_eq!(body["tag"], "INVALID_API_KEY");
            assert_eq!(body["error"], "Invalid API key");
            assert_eq!(body["requestId"].as_str().unwrap().len(), 32);
        }
        let (status, _) = post(&mock, Some("other"), Some("reject_key=revoked"), query).await;
        assert_eq!(status, 200);
        mock.stop().await;
    }

    #[tokio::test]
    async fn knobs_make_a_search_fail_or_wait() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let query = json!({"query": "rust"});
        let response = reqwest::Client::new()
            .post(url(&mock))
            .header(API_KEY_HEADER, "k")
            .header(KNOB_HEADER, "status=429,retry_after=3")
            .json(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["tag"], "RATE_LIMIT_EXCEEDED");
        let (status, body) = post(&mock, Some("k"), Some("status=503"), query.clone()).await;
        assert_eq!(
            (status, body["tag"].as_str()),
            (503, Some("INTERNAL_ERROR"))
        );

        let started = std::time::Instant::now();
        let (status, _) = post(&mock, Some("k"), Some("ttft_ms=150"), query.clone()).await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(150));

        let (status, body) = post(&mock, Some("k"), Some("len=3"), query).await;
        assert_eq!(status, 400);
        assert_eq!(body["tag"], "INVALID_REQUEST_BODY");
        mock.stop().await;
    }

    #[test]
    fn slugs_keep_ascii_letters_and_digits() {
        assert_eq!(slug("Rust  async/await 2024"), "rust-async-await-2024");
        assert_eq!(slug("--"), "query");
        assert_eq!(slug("café au lait"), "caf-au-lait");
    }
}
