//! The Gemini side of the mock upstream: `POST /v1beta/models/{model}:streamGenerateContent`.
//!
//! Speaks the `?alt=sse` stream format (the query is not checked): `data: {json}\r\n\r\n` frames,
//! no `[DONE]`, the body simply ends. Each word is one `GenerateContentResponse` chunk with
//! `candidates[0].content.parts: [{"text": "w{i} "}]` (role `model`); reasoning words come first as
//! thought parts `{"text": "r{i} ", "thought": true}` (always when `reasoning > 0`, whether or not
//! the request asked for `includeThoughts`). Every chunk carries the running `usageMetadata`
//! (`promptTokenCount`: words of all request texts, `candidatesTokenCount`: answer words so far,
//! `thoughtsTokenCount`: reasoning words so far, `totalTokenCount`: their sum, as Gemini counts
//! them); a last chunk with an empty text part carries `finishReason: "STOP"`.
//!
//! With a tool-call script (see the parent module and `tools`) the answer ends with one chunk
//! whose parts are all the calls, `{"functionCall": {"name", "args"}}` (with `id` only when the
//! script gives one), and `finishReason: "STOP"`, as Gemini sends parallel calls: whole, in one
//! chunk. A request's tool-result rounds are its contents with `functionResponse` parts; the
//! result text of a `functionResponse` is its `response.content`, `response.result` or
//! `response.output` (a string as it is, anything else as JSON), or else the whole `response`
//! as JSON, and its words count as prompt tokens.
//!
//! The model name comes from the URL path (`mock:len=5,…`, URL-decoded; Gemini's action follows
//! the last `:`), and the knobs are those of the parent module, with the same `x-mock` override.
//! Differences from the OpenAI stream: `status` answers Google's error JSON
//! (`{"error":{"code","message","status","details"}}`) and `retry_after` becomes a
//! `google.rpc.RetryInfo` detail (`"retryDelay": "2s"`) instead of a header, as Google sends no
//! rate-limit headers; `error_after` sends `{"error":{"code":503,…,"status":"UNAVAILABLE"}}`.
//! Requests count in the same counter as the other routes.
//!
//! The pacing is the parent module's engine; this module renders its steps (a `WireFormat`).

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::record::Recorder;
use super::tools::{ToolHistory, Turn, word_count};
use super::{Knobs, Step, WireFormat, event_stream};

/// The one action served.
const STREAM_ACTION: &str = "streamGenerateContent";
/// The `@type` of Google's retry-delay error detail.
const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `POST /v1beta/models/{model_action}`, where the segment is `{model}:{action}`.
pub(super) async fn models_action(
    request: HttpRequest,
    body: Bytes,
    counter: web::Data<AtomicUsize>,
    recorder: web::Data<Recorder>,
) -> HttpResponse {
    let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let segment = percent_decode(request.match_info().get("model_action").unwrap_or_default());
    let Some((model, action)) = segment.rsplit_once(':') else {
        return google_error(
            StatusCode::NOT_FOUND,
            &format!("no action in `{segment}`: expected `{{model}}:{STREAM_ACTION}`"),
            None,
        );
    };
    if action != STREAM_ACTION {
        return google_error(
            StatusCode::NOT_FOUND,
            &format!("the mock upstream serves only `{STREAM_ACTION}`, not `{action}`"),
            None,
        );
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            recorder.record(&request, Value::Null);
            return google_error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}"), None);
        }
    };
    let prompt_tokens = prompt_word_count(&parsed);
    let history = tool_history(&parsed);
    recorder.record(&request, parsed);
    let knobs = match Knobs::from_http(model, &request) {
        Ok(knobs) => knobs,
        Err(message) => return google_error(StatusCode::BAD_REQUEST, &message, None),
    };
    if let Some(status) = knobs.status.filter(|s| !s.is_success()) {
        return google_error(
            status,
            &format!("mock error (HTTP {})", status.as_u16()),
            knobs.retry_after,
        );
    }
    let reply = GeminiReply {
        response_id: format!("mock{number}"),
        model: model.to_owned(),
        prompt_tokens,
        turn: Turn::choose(&knobs, &history),
        knobs,
    };
    event_stream(reply)
}

/// A Google error: `{"error":{"code","message","status"}}`, plus a `RetryInfo` detail when a
/// delay is given.
fn google_error(status: StatusCode, message: &str, retry_after: Option<u64>) -> HttpResponse {
    let mut error = Map::new();
    error.insert("code".to_owned(), json!(status.as_u16()));
    error.insert("message".to_owned(), json!(message));
    error.insert("status".to_owned(), json!(google_status(status)));
    if let Some(seconds) = retry_after {
        error.insert(
            "details".to_owned(),
            json!([{"@type": RETRY_INFO_TYPE, "retryDelay": format!("{seconds}s")}]),
        );
    }
    HttpResponse::build(status).json(json!({ "error": error }))
}

/// The `google.rpc.Code` name Google pairs with an HTTP status.
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// Whitespace-separated words of every `text` part and `functionResponse` result text in
/// `contents` and `systemInstruction`.
fn prompt_word_count(body: &Value) -> u64 {
    let words_of_parts = |content: &Value| -> u64 {
        parts_of(content)
            .iter()
            .map(|part| match part.get("text").and_then(Value::as_str) {
                Some(text) => word_count(text),
                None => part
                    .get("functionResponse")
                    .map_or(0, |response| word_count(&function_response_text(response))),
            })
            .sum()
    };
    let contents: u64 = body
        .get("contents")
        .and_then(Value::as_array)
        .map_or(0, |contents| contents.iter().map(words_of_parts).sum());
    let system = body.get("systemInstruction").map_or(0, words_of_parts);
    contents + system
}

/// The `parts` of a content, none if it has none.
fn parts_of(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The result text of a `functionResponse`: `response.content`, `.result` or `.output` (a
/// string as it is, anything else as JSON), else the whole `response` as JSON.
fn function_response_text(function_response: &Value) -> String {
    let Some(response) = function_response.get("response") else {
        return String::new();
    };
    let field = ["content", "result", "output"]
        .iter()
        .find_map(|key| response.get(key));
    match field.unwrap_or(response) {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The tool rounds of a Gemini request: each content with `functionResponse` parts is one; the
/// last result is the last such part's.
fn tool_history(body: &Value) -> ToolHistory {
    let mut history = ToolHistory::default();
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for content in contents {
        let parts = parts_of(content);
        if let Some(last) = parts
            .iter()
            .filter_map(|part| part.get("functionResponse"))
            .next_back()
        {
            history.rounds += 1;
            history.last_result = Some(function_response_text(last));
        }
        let is_user = content
            .get("role")
            .and_then(Value::as_str)
            .is_none_or(|role| role == "user");
        let text = parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        if is_user && !text.trim().is_empty() {
            history.last_user_text = text;
        }
    }
    history
}

/// Decodes `%XY` escapes (actix leaves `%25`, `%2F` and `%2B` encoded in path segments).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything needed to produce one Gemini reply.
struct GeminiReply {
    response_id: String,
    model: String,
    prompt_tokens: u64,
    turn: Turn,
    knobs: Knobs,
}

impl GeminiReply {
    /// One `functionCall` part per call, in order.
    fn function_calls(&self) -> Vec<Value> {
        self.turn
            .calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let mut function_call = Map::new();
                function_call.insert("name".to_owned(), json!(call.name));
                function_call.insert("args".to_owned(), call.args.clone());
                if let Some(id) = self.turn.script_id(index) {
                    function_call.insert("id".to_owned(), json!(id));
                }
                json!({ "functionCall": function_call })
            })
            .collect()
    }

    /// The running `usageMetadata` after `sent` tokens (reasoning words come first).
    fn usage(&self, sent: usize) -> Value {
        let thoughts = sent.min(self.knobs.reasoning) as u64;
        let candidates = sent.saturating_sub(self.knobs.reasoning) as u64;
        let cached = self.knobs.cached as u64;
        json!({
            "promptTokenCount": self.prompt_tokens + cached,
            "candidatesTokenCount": candidates,
            "thoughtsTokenCount": thoughts,
            "cachedContentTokenCount": cached,
            "totalTokenCount": self.prompt_tokens + cached + candidates + thoughts,
        })
    }

    /// One `data: {chunk}\r\n\r\n` frame with `parts`, after `sent` tokens.
    fn frame(&self, parts: Vec<Value>, sent: usize, finish_reason: Option<&str>) -> Bytes {
        let mut candidate = Map::new();
        candidate.insert(
            "content".to_owned(),
            json!({"parts": parts, "role": "model"}),
        );
        if let Some(reason) = finish_reason {
            candidate.insert("finishReason".to_owned(), json!(reason));
        }
        candidate.insert("index".to_owned(), json!(0));
        let chunk = json!({
            "candidates": [candidate],
            "usageMetadata": self.usage(sent),
            "modelVersion": self.model,
            "responseId": self.response_id,
        });
        Bytes::from(format!("data: {chunk}\r\n\r\n"))
    }
}

/// The `?alt=sse` stream: one chunk per word with the running usage, then the finishing chunk
/// (with the function calls, if any); nothing on opening, no `[DONE]`.
impl WireFormat for GeminiReply {
    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn turn(&self) -> &Turn {
        &self.turn
    }

    fn render(&self, step: Step) -> Vec<Bytes> {
        match step {
            Step::KeepAlive => vec![Bytes::from_static(b": keep-alive\r\n\r\n")],
            Step::Word { index, reasoning } => {
                let text = self.turn.word(index, reasoning);
                let (part, sent) = if reasoning {
                    (json!({"text": text, "thought": true}), index + 1)
                } else {
                    (json!({"text": text}), self.knobs.reasoning + index + 1)
                };
                vec![self.frame(vec![part], sent, None)]
            }
            Step::Error => vec![Bytes::from_static(
                b"data: {\"error\":{\"code\":503,\"message\":\"mock mid-stream error\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n",
            )],
            Step::Done => {
                let total = self.turn.tokens(&self.knobs);
                let parts = if self.turn.calls.is_empty() {
                    vec![json!({"text": ""})]
                } else {
                    self.function_calls()
                };
                vec![self.frame(parts, total, Some("STOP"))]
            }
            // Gemini sends a call whole, at the end: nothing while its arguments are generated.
            Step::Open
            | Step::Stall
            | Step::Begin { .. }
            | Step::CallBegin { .. }
            | Step::Piece { .. }
            | Step::CallEnd { .. }
            | Step::Drop => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::super::{KNOB_HEADER, MockUpstream};
    use super::*;
    use crate::mock_upstream::tests::{request, text_of};
    use crate::providers::gemini::{self, GeminiConfig};
    use crate::providers::{FinishReason, ProviderError, ProviderEvent, Usage};

    fn config(mock: &MockUpstream, include_thoughts: bool) -> GeminiConfig {
        GeminiConfig {
            name: "gemini".into(),
            base_url: format!("http://127.0.0.1:{}", mock.port()),
            api_key: "test".into(),
            include_thoughts,
        }
    }

    /// Streams `model` from the mock through the Gemini adapter and collects every item.
    async fn collect(
        mock: &MockUpstream,
        model: &str,
        include_thoughts: bool,
    ) -> Result<Vec<Result<ProviderEvent, ProviderError>>, ProviderError> {
        let http = reqwest::Client::new();
        let stream =
            gemini::stream(&http, &config(mock, include_thoughts), &request(model)).await?;
        Ok(stream.collect().await)
    }

    fn url(mock: &MockUpstream, model: &str) -> String {
        format!(
            "http://127.0.0.1:{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
            mock.port()
        )
    }

    #[tokio::test]
    async fn a_plain_reply_streams_words_then_the_last_running_usage_then_stop() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=3", false).await.unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w2 ".into() }),
            Ok(ProviderEvent::Usage {
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 3,
                    reasoning_tokens: 0,
                    cached_input_tokens: 0,
                },
            }),
            Ok(ProviderEvent::Finish {
                reason: FinishReason::Stop,
            }),
        ];
        assert_eq!(events, expected);
        assert_eq!(text_of(&events), "w0 w1 w2 ");
        assert_eq!(mock.requests(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn reasoning_words_come_first_as_thoughts() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=2,reasoning=2,keepalive", true)
            .await
            .unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::ReasoningDelta { text: "r0 ".into() }),
            Ok(ProviderEvent::ReasoningDelta { text: "r1 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Ok(ProviderEvent::Usage {
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 2,
                    reasoning_tokens: 2,
                    cached_input_tokens: 0,
                },
            }),
            Ok(ProviderEvent::Finish {
                reason: FinishReason::Stop,
            }),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_429_carries_its_delay_in_retry_info_not_a_header() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let Err(error) = collect(&mock, "mock:status=429,retry_after=2", false).await else {
            panic!("expected an HTTP error");
        };
        assert_eq!(
            error,
            ProviderError::Http {
                status: 429,
                message: "mock error (HTTP 429)".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert!(error.is_retryable());

        let response = reqwest::Client::new()
            .post(url(&mock, "mock:status=429,retry_after=2"))
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert!(response.headers().get("retry-after").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {
                "code": 429,
                "message": "mock error (HTTP 429)",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": RETRY_INFO_TYPE, "retryDelay": "2s"}],
            }})
        );
        assert_eq!(mock.requests(), 2);
        mock.stop().await;
    }

    #[tokio::test]
    async fn error_after_sends_a_google_error_object_mid_stream() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,error_after=2", false)
            .await
            .unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Err(ProviderError::Stream("mock mid-stream error".into())),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn drop_after_breaks_the_connection_before_any_finish_reason() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,drop_after=2", false)
            .await
            .unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(text_of(&events), "w0 w1 ");
        let Some(Err(ProviderError::Stream(message))) = events.last() else {
            panic!("expected a stream error, got {events:?}");
        };
        assert!(message.starts_with("stream ended early"), "{message}");
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_exact_wire_frames() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let response = reqwest::Client::new()
            .post(url(&mock, "mock:len=1,reasoning=1"))
            .json(&json!({
                "contents": [{"role": "user", "parts": [{"text": "a b"}, {"text": "c"}]}],
                "systemInstruction": {"parts": [{"text": "d"}]},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.ends_with("\r\n\r\n") && !body.contains("[DONE]"),
            "{body:?}"
        );
        let frames: Vec<Value> = body
            .split_terminator("\r\n\r\n")
            .map(|frame| serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let usage = |candidates: u64, thoughts: u64| {
            json!({
                "promptTokenCount": 4,
                "candidatesTokenCount": candidates,
                "thoughtsTokenCount": thoughts,
                "cachedContentTokenCount": 0,
                "totalTokenCount": 4 + candidates + thoughts,
            })
        };
        let chunk = |part: Value, usage: Value| {
            json!({
                "candidates": [{"content": {"parts": [part], "role": "model"}, "index": 0}],
                "usageMetadata": usage,
                "modelVersion": "mock:len=1,reasoning=1",
                "responseId": "mock1",
            })
        };
        let mut last = chunk(json!({"text": ""}), usage(1, 1));
        last["candidates"][0]["finishReason"] = json!("STOP");
        assert_eq!(
            frames,
            vec![
                chunk(json!({"text": "r0 ", "thought": true}), usage(0, 1)),
                chunk(json!({"text": "w0 "}), usage(1, 1)),
                last,
            ]
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_encoded_model_is_decoded_and_the_header_overrides_it() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        let body = http
            .post(url(&mock, "mock%3Alen%3D4%2Creasoning%3D1"))
            .header(KNOB_HEADER, "len=1")
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains(r#""text":"r0 ""#), "{body}");
        assert!(body.contains(r#""text":"w0 ""#), "{body}");
        assert!(!body.contains("w1"), "{body}");
        assert!(body.contains(r#""modelVersion":"mock:len=4,reasoning=1""#));

        let response = http
            .post(url(&mock, "mock:len=3"))
            .header(KNOB_HEADER, "status=503")
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], "UNAVAILABLE");
        assert!(body["error"].get("details").is_none(), "{body}");

        let response = http
            .post(url(&mock, "mock:bogus=1"))
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        mock.stop().await;
    }

    #[tokio::test]
    async fn other_actions_are_not_found_and_every_route_shares_the_counter() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        let response = http
            .post(format!(
                "http://127.0.0.1:{}/v1beta/models/mock:generateContent",
                mock.port()
            ))
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], "NOT_FOUND");
        let response = http
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({"model": "mock:len=1", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(mock.requests(), 2);
        mock.stop().await;
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        assert_eq!(
            percent_decode("mock%3Alen%3D3%2Ctps%3D2"),
            "mock:len=3,tps=2"
        );
        assert_eq!(percent_decode("a%2Fb%25c"), "a/b%c");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn prompt_words_count_contents_and_the_system_instruction() {
        let body = json!({
            "contents": [
                {"role": "user", "parts": [{"text": "one two"}, {"inlineData": {}}]},
                {"role": "model", "parts": [{"text": "three"}]},
            ],
            "systemInstruction": {"parts": [{"text": "four five six"}]},
        });
        assert_eq!(prompt_word_count(&body), 6);
        assert_eq!(prompt_word_count(&json!({})), 0);
    }

    /// A script with two parallel calls (the second with an id), then words.
    fn script() -> Value {
        json!([
            {"call": [
                {"name": "web_search", "arguments": {"query": "rust"}},
                {"name": "get_time", "arguments": {"tz": "CET"}, "id": "fc_1"},
            ]},
            {"text": "found: {result}"},
        ])
    }

    #[tokio::test]
    async fn a_script_in_the_model_path_sends_all_calls_in_one_finishing_chunk() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let model = format!("mock:{}", crate::mock_upstream::script_knob(&script()));
        let body = reqwest::Client::new()
            .post(url(&mock, &model))
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "search rust"}]}]}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let frames = crate::mock_upstream::tests::data_frames(&body);
        assert_eq!(frames.len(), 1, "{body}");
        let candidate = &frames[0]["candidates"][0];
        assert_eq!(
            candidate["content"],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "web_search", "args": {"query": "rust"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "CET"}, "id": "fc_1"}},
            ]})
        );
        assert_eq!(candidate["finishReason"], "STOP");
        // `{"query":"rust"}` is 5 pieces, `{"tz":"CET"}` 5.
        assert_eq!(frames[0]["usageMetadata"]["candidatesTokenCount"], 10);
        assert_eq!(frames[0]["usageMetadata"]["promptTokenCount"], 2);
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_tools_knob_drives_the_gemini_adapter_to_tool_calls() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:tools=web_search", false)
            .await
            .unwrap();
        assert_eq!(
            events,
            vec![
                Ok(ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "call_0".into(),
                    name: "web_search".into(),
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: r#"{"query":"say three words"}"#.into(),
                }),
                Ok(ProviderEvent::Usage {
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 7,
                        reasoning_tokens: 0,
                        cached_input_tokens: 0,
                    },
                }),
                Ok(ProviderEvent::Finish {
                    reason: FinishReason::ToolCalls,
                }),
            ]
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_round_with_function_responses_answers_words_that_echo_the_last_result() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let contents = json!([
            {"role": "user", "parts": [{"text": "search rust"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "web_search", "args": {"query": "rust"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "CET"}, "id": "fc_1"}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "web_search", "response": {"result": "one two"}}},
                {"functionResponse": {"id": "fc_1", "name": "get_time",
                                      "response": {"content": "noon in Paris"}}},
            ]},
        ]);
        let body = reqwest::Client::new()
            .post(url(&mock, "mock:len=1"))
            .header(crate::mock_upstream::SCRIPT_HEADER, script().to_string())
            .json(&json!({"contents": contents}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let frames = crate::mock_upstream::tests::data_frames(&body);
        let text: String = frames
            .iter()
            .filter_map(|f| f["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert_eq!(text, "found: noon in Paris w0 ");
        assert!(!body.contains("functionCall"), "{body}");
        let last = frames.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        // "search rust", "one two", "noon in Paris".
        assert_eq!(last["usageMetadata"]["promptTokenCount"], 7);
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
        let recorded = mock.last_recorded(":streamGenerateContent").unwrap();
        assert_eq!(recorded.query, "alt=sse");
        assert_eq!(recorded.body["contents"], contents);
        mock.stop().await;
    }

    #[test]
    fn function_responses_give_their_result_text() {
        let text =
            |response: Value| function_response_text(&json!({"name": "f", "response": response}));
        assert_eq!(text(json!({"content": "a b"})), "a b");
        assert_eq!(text(json!({"result": {"n": 1}})), r#"{"n":1}"#);
        assert_eq!(text(json!({"output": "o"})), "o");
        assert_eq!(text(json!({"temp": 20})), r#"{"temp":20}"#);
        assert_eq!(function_response_text(&json!({"name": "f"})), "");
    }
}
