//! The mock upstream's Anthropic Messages endpoint, `POST /v1/messages`.
//!
//! Same knobs, words and counting as the Chat Completions route (see the parent module; the
//! request counter is shared), in Anthropic's wire format:
//! `message_start` (`usage.input_tokens` = words in `system` and `messages`), one `ping`, after
//! `ttft_ms` a thinking block when `reasoning > 0` (one `thinking_delta` per word `r{i} `, then a
//! `signature_delta`, `content_block_stop`), a text block with one `text_delta` per word `w{i} `,
//! `message_delta` with `stop_reason: end_turn` and the cumulative `usage.output_tokens`
//! (reply plus reasoning words), `message_stop`. `keepalive` adds a `ping` before
//! `message_start`.
//!
//! With a tool-call script (see the parent module and `tools`) the answer is `tool_use` blocks
//! after the thinking and text blocks, if any: `content_block_start` with `{type: "tool_use",
//! id, name, input: {}}`, an empty `input_json_delta` (as Anthropic sends first), one
//! `input_json_delta` per argument piece, `content_block_stop`; then `stop_reason: "tool_use"`.
//! A request's tool-result rounds are its user messages with `tool_result` blocks; the words of
//! their contents count as input tokens.
//!
//! `status` answers Anthropic's error body (`{"type":"error","error":{"type","message"}}`, the
//! type chosen by the status, e.g. `rate_limit_error` for 429, `overloaded_error` for 529) with
//! `retry-after`; `error_after` sends `event: error` with an `overloaded_error` and ends;
//! `drop_after` and `stall_after` work as on the OpenAI route. A request without `stream: true`
//! gets a whole `message` object.
//!
//! The pacing is the parent module's engine; this module renders its steps (a `WireFormat`).

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::record::Recorder;
use super::tools::{ToolHistory, Turn, content_text};
use super::{Knobs, MockMessage, Step, WireFormat, event_stream, parse_recorded, set_retry_after};

/// A stand-in for the signature Anthropic puts on thinking blocks.
const MOCK_SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

/// `POST /v1/messages`.
pub(super) async fn messages(
    request: HttpRequest,
    body: Bytes,
    counter: web::Data<AtomicUsize>,
    recorder: web::Data<Recorder>,
) -> HttpResponse {
    let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed = match parse_recorded::<MessagesRequest>(&request, &body, &recorder) {
        Ok(parsed) => parsed,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let knobs = match Knobs::from_http(&parsed.model, &request) {
        Ok(knobs) => knobs,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    if let Some(status) = knobs.status.filter(|s| !s.is_success()) {
        let mut response =
            error_response(status, &format!("mock error (HTTP {})", status.as_u16()));
        set_retry_after(&mut response, knobs.retry_after);
        return response;
    }
    let system = MockMessage {
        role: "system".to_owned(),
        content: parsed.system.unwrap_or(Value::Null),
    };
    let reply = Reply {
        id: format!("msg_mock{number}"),
        model: parsed.model,
        input_tokens: system.word_count()
            + parsed
                .messages
                .iter()
                .map(MockMessage::word_count)
                .sum::<u64>(),
        turn: Turn::choose(&knobs, &tool_history(&parsed.messages)),
        knobs,
    };
    if parsed.stream.unwrap_or(false) {
        event_stream(reply)
    } else {
        reply.knobs.wait_whole_reply(&reply.turn).await;
        HttpResponse::Ok().json(reply.message())
    }
}

/// An Anthropic error body; the error type follows the status as the real API's does.
fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    HttpResponse::build(status).json(json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    }))
}

/// The tool rounds of a Messages request: each user message with `tool_result` blocks is one;
/// the last result is the content of the last such block.
fn tool_history(messages: &[MockMessage]) -> ToolHistory {
    let mut history = ToolHistory::default();
    for message in messages.iter().filter(|m| m.role == "user") {
        let results = message.content.as_array().map_or(Vec::new(), |blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .collect()
        });
        if let Some(last) = results.last() {
            history.rounds += 1;
            history.last_result = Some(last.get("content").map(content_text).unwrap_or_default());
        }
        let text = content_text(&message.content);
        if !text.trim().is_empty() {
            history.last_user_text = text;
        }
    }
    history
}

#[derive(Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: String,
    /// A string or a list of text blocks.
    system: Option<Value>,
    #[serde(default)]
    messages: Vec<MockMessage>,
    stream: Option<bool>,
}

/// Everything needed to produce one reply.
struct Reply {
    id: String,
    model: String,
    input_tokens: u64,
    turn: Turn,
    knobs: Knobs,
}

impl Reply {
    fn output_tokens(&self) -> u64 {
        self.turn.tokens(&self.knobs) as u64
    }

    /// The thinking block, if any, is block 0 and the text block follows it.
    fn text_index(&self) -> usize {
        usize::from(self.knobs.reasoning > 0)
    }

    /// The `tool_use` blocks follow the thinking and text blocks.
    fn call_index(&self, call: usize) -> usize {
        self.text_index() + usize::from(self.turn.has_text(&self.knobs)) + call
    }

    fn stop_reason(&self) -> &'static str {
        if self.turn.calls.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
    }

    /// One `event: {type}\ndata: {json}\n\n` frame; the type is repeated inside, as Anthropic does.
    fn frame(data: &Value) -> Bytes {
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
    }

    fn message_start(&self) -> Bytes {
        Self::frame(&json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": self.input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": self.knobs.cached,
                    "output_tokens": 1,
                },
            },
        }))
    }

    fn block_start(index: usize, block: Value) -> Bytes {
        Self::frame(&json!({"type": "content_block_start", "index": index, "content_block": block}))
    }

    fn block_delta(index: usize, delta: Value) -> Bytes {
        Self::frame(&json!({"type": "content_block_delta", "index": index, "delta": delta}))
    }

    fn block_stop(index: usize) -> Bytes {
        Self::frame(&json!({"type": "content_block_stop", "index": index}))
    }

    /// The thinking block's signature and stop.
    fn close_thinking() -> [Bytes; 2] {
        [
            Self::block_delta(
                0,
                json!({"type": "signature_delta", "signature": MOCK_SIGNATURE}),
            ),
            Self::block_stop(0),
        ]
    }

    fn ping() -> Bytes {
        Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
    }

    fn message(&self) -> Value {
        let mut content = Vec::with_capacity(2 + self.turn.calls.len());
        if self.knobs.reasoning > 0 {
            content.push(json!({
                "type": "thinking",
                "thinking": self.knobs.words(true),
                "signature": MOCK_SIGNATURE,
            }));
        }
        if self.turn.has_text(&self.knobs) {
            content.push(json!({"type": "text", "text": self.turn.text(&self.knobs)}));
        }
        for (index, call) in self.turn.calls.iter().enumerate() {
            content.push(json!({
                "type": "tool_use",
                "id": self.turn.call_id(index, "toolu_"),
                "name": call.name,
                "input": call.args,
            }));
        }
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason(),
            "stop_sequence": null,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": self.knobs.cached,
                "output_tokens": self.output_tokens(),
            },
        })
    }
}

/// The Messages stream: `message_start` and a `ping` on opening, each run of words a content
/// block (the thinking block closes with its signature), a `tool_use` block per call,
/// `message_delta` and `message_stop`.
impl WireFormat for Reply {
    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn turn(&self) -> &Turn {
        &self.turn
    }

    fn render(&self, step: Step) -> Vec<Bytes> {
        match step {
            Step::KeepAlive => vec![Self::ping()],
            Step::Open => vec![self.message_start(), Self::ping()],
            Step::Begin { reasoning: true } => vec![Self::block_start(
                0,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            )],
            Step::Begin { reasoning: false } => {
                let mut frames = Vec::with_capacity(3);
                if self.knobs.reasoning > 0 {
                    frames.extend(Self::close_thinking());
                }
                frames.push(Self::block_start(
                    self.text_index(),
                    json!({"type": "text", "text": ""}),
                ));
                frames
            }
            Step::Word {
                index,
                reasoning: true,
            } => vec![Self::block_delta(
                0,
                json!({"type": "thinking_delta", "thinking": self.turn.word(index, true)}),
            )],
            Step::Word {
                index,
                reasoning: false,
            } => vec![Self::block_delta(
                self.text_index(),
                json!({"type": "text_delta", "text": self.turn.word(index, false)}),
            )],
            Step::CallBegin { call } => {
                let mut frames = Vec::with_capacity(4);
                if call == 0 {
                    if self.turn.has_text(&self.knobs) {
                        frames.push(Self::block_stop(self.text_index()));
                    } else if self.knobs.reasoning > 0 {
                        frames.extend(Self::close_thinking());
                    }
                }
                let index = self.call_index(call);
                let name = self.turn.calls.get(call).map_or("", |c| c.name.as_str());
                frames.push(Self::block_start(
                    index,
                    json!({
                        "type": "tool_use",
                        "id": self.turn.call_id(call, "toolu_"),
                        "name": name,
                        "input": {},
                    }),
                ));
                frames.push(Self::block_delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": ""}),
                ));
                frames
            }
            Step::Piece { call, piece } => {
                let partial = self
                    .turn
                    .calls
                    .get(call)
                    .and_then(|c| c.pieces.get(piece))
                    .map_or("", String::as_str);
                vec![Self::block_delta(
                    self.call_index(call),
                    json!({"type": "input_json_delta", "partial_json": partial}),
                )]
            }
            Step::CallEnd { call } => vec![Self::block_stop(self.call_index(call))],
            Step::Error => vec![Bytes::from_static(
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            )],
            Step::Done => {
                let mut frames = Vec::with_capacity(3);
                // A tool call's block is closed by its `CallEnd`.
                if self.turn.calls.is_empty() {
                    frames.push(Self::block_stop(self.text_index()));
                }
                frames.push(Self::frame(&json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
                    "usage": {"output_tokens": self.output_tokens()},
                })));
                frames.push(Self::frame(&json!({"type": "message_stop"})));
                frames
            }
            Step::Stall | Step::Drop => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::mock_upstream::tests::{request, text_of};
    use crate::mock_upstream::{KNOB_HEADER, MockUpstream};
    use crate::providers::anthropic::{self, AnthropicConfig};
    use crate::providers::{FinishReason, ProviderError, ProviderEvent, Usage};

    fn base_url(mock: &MockUpstream) -> String {
        format!("http://127.0.0.1:{}", mock.port())
    }

    fn config(mock: &MockUpstream) -> AnthropicConfig {
        AnthropicConfig {
            base_url: base_url(mock),
            ..AnthropicConfig::new("test")
        }
    }

    /// Streams `model` from the mock through the Anthropic adapter and collects every item.
    async fn collect(
        mock: &MockUpstream,
        model: &str,
    ) -> Result<Vec<Result<ProviderEvent, ProviderError>>, ProviderError> {
        let http = reqwest::Client::new();
        let stream = anthropic::stream(&http, &config(mock), &request(model)).await?;
        Ok(stream.collect().await)
    }

    fn usage(input: u64, output: u64) -> Result<ProviderEvent, ProviderError> {
        Ok(ProviderEvent::Usage {
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                reasoning_tokens: 0,
                cached_input_tokens: 0,
            },
        })
    }

    fn stop() -> Result<ProviderEvent, ProviderError> {
        Ok(ProviderEvent::Finish {
            reason: FinishReason::Stop,
        })
    }

    #[tokio::test]
    async fn a_plain_reply_streams_words_then_usage_then_stop() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=3").await.unwrap();
        let expected = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w2 ".into() }),
            // "be brief" + "say three words"
            usage(5, 3),
            stop(),
        ];
        assert_eq!(events, expected);
        assert_eq!(text_of(&events), "w0 w1 w2 ");
        assert_eq!(mock.requests(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn reasoning_words_come_first_as_a_thinking_block() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=2,reasoning=2,keepalive")
            .await
            .unwrap();
        let expected = vec![
            Ok(ProviderEvent::ReasoningDelta { text: "r0 ".into() }),
            Ok(ProviderEvent::ReasoningDelta { text: "r1 ".into() }),
            Ok(ProviderEvent::ReasoningSignature {
                signature: MOCK_SIGNATURE.into(),
            }),
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            usage(5, 4),
            stop(),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_status_knob_answers_an_anthropic_error_with_retry_after() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let Err(error) = collect(&mock, "mock:status=429,retry_after=2").await else {
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
        assert_eq!(mock.requests(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn error_bodies_carry_the_anthropic_error_type() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        for (status, kind) in [
            ("529", "overloaded_error"),
            ("429", "rate_limit_error"),
            ("400", "invalid_request_error"),
            ("503", "api_error"),
        ] {
            let response = http
                .post(format!("{}/v1/messages", base_url(&mock)))
                .header(KNOB_HEADER, format!("status={status}"))
                .json(&json!({"model": "mock", "max_tokens": 10, "messages": [], "stream": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_str(), status);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], kind, "{status}");
        }
        let response = http
            .post(format!("{}/v1/messages", base_url(&mock)))
            .json(&json!({"model": "mock:bogus=1", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        // Both routes count into the same counter.
        http.post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({"model": "mock:len=1", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(mock.requests(), 6);
        mock.stop().await;
    }

    #[tokio::test]
    async fn error_after_sends_an_overloaded_error_event() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,error_after=2").await.unwrap();
        let expected = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Err(ProviderError::Stream("Overloaded".into())),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn drop_after_breaks_the_connection_before_message_stop() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,drop_after=2").await.unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(text_of(&events), "w0 w1 ");
        let Some(Err(ProviderError::Stream(message))) = events.last() else {
            panic!("expected a stream error, got {events:?}");
        };
        assert!(message.starts_with("stream ended early"), "{message}");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stall_delays_the_rest_of_the_reply() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let started = std::time::Instant::now();
        let events = collect(&mock, "mock:len=3,stall_after=1,stall_ms=300")
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(text_of(&events), "w0 w1 w2 ");
        assert_eq!(events.last(), Some(&stop()));
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_exact_wire_frames() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body = reqwest::Client::new()
            .post(format!("{}/v1/messages", base_url(&mock)))
            .json(&json!({
                "model": "mock:len=1,reasoning=1",
                "max_tokens": 100,
                "system": [{"type": "text", "text": "be brief"}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}],
                "stream": true,
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let frames: Vec<(&str, Value)> = body
            .split_terminator("\n\n")
            .map(|frame| {
                let (event, data) = frame.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                let event = event.strip_prefix("event: ").unwrap();
                assert_eq!(data["type"], event, "{frame}");
                (event, data)
            })
            .collect();
        let names: Vec<&str> = frames.iter().map(|(event, _)| *event).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(frames[0].1["message"]["usage"]["input_tokens"], 4);
        assert_eq!(frames[0].1["message"]["model"], "mock:len=1,reasoning=1");
        assert_eq!(frames[2].1["content_block"]["type"], "thinking");
        assert_eq!(
            frames[3].1["delta"],
            json!({"type": "thinking_delta", "thinking": "r0 "})
        );
        assert_eq!(frames[4].1["delta"]["type"], "signature_delta");
        assert_eq!(frames[6].1["index"], 1);
        assert_eq!(
            frames[6].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            frames[7].1["delta"],
            json!({"type": "text_delta", "text": "w0 "})
        );
        assert_eq!(frames[9].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(frames[9].1["usage"], json!({"output_tokens": 2}));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_non_streaming_request_gets_a_message() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body: Value = reqwest::Client::new()
            .post(format!("{}/v1/messages", base_url(&mock)))
            .json(&json!({
                "model": "mock:len=3",
                "max_tokens": 100,
                "system": "be brief",
                "messages": [{"role": "user", "content": "one two three four"}],
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["type"], "message");
        assert_eq!(
            body["content"],
            json!([{"type": "text", "text": "w0 w1 w2 "}])
        );
        assert_eq!(body["stop_reason"], "end_turn");
        assert_eq!(body["usage"]["input_tokens"], 6);
        assert_eq!(body["usage"]["output_tokens"], 3);
        mock.stop().await;
    }

    const CALLS: &str = concat!(
        r#"[{"text": "let me look", "call": [{"name": "web_search", "arguments": {"query": "rust"}},"#,
        r#" {"name": "get_time", "arguments": {"tz": "CET"}, "id": "toolu_given"}]},"#,
        r#" {"text": "found: {result}"}]"#,
    );

    /// The `(event, data)` pairs of a Messages stream.
    fn events_of(body: &str) -> Vec<(String, Value)> {
        body.split_terminator("\n\n")
            .map(|frame| {
                let (event, data) = frame.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (event.strip_prefix("event: ").unwrap().to_owned(), data)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_script_streams_tool_use_blocks_after_thinking_and_text() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body = reqwest::Client::new()
            .post(format!("{}/v1/messages", base_url(&mock)))
            .header(crate::mock_upstream::SCRIPT_HEADER, CALLS)
            .json(&json!({
                "model": "mock:reasoning=1",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "search rust"}],
                "stream": true,
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events = events_of(&body);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(event, _)| event == "content_block_start")
            .map(|(_, data)| data)
            .collect();
        assert_eq!(starts.len(), 4, "{body}");
        assert_eq!(starts[0]["content_block"]["type"], "thinking");
        assert_eq!(
            starts[1]["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            *starts[2],
            json!({"type": "content_block_start", "index": 2, "content_block": {
                "type": "tool_use", "id": "toolu_mock_0_0", "name": "web_search", "input": {},
            }})
        );
        assert_eq!(starts[3]["index"], 3);
        assert_eq!(starts[3]["content_block"]["id"], "toolu_given");
        assert_eq!(starts[3]["content_block"]["name"], "get_time");
        // Every block is stopped before the next starts, each once.
        let mut open: Option<u64> = None;
        for (event, data) in &events {
            match event.as_str() {
                "content_block_start" => {
                    assert_eq!(open, None, "{body}");
                    open = data["index"].as_u64();
                }
                "content_block_delta" => assert_eq!(open, data["index"].as_u64(), "{body}"),
                "content_block_stop" => {
                    assert_eq!(open, data["index"].as_u64(), "{body}");
                    open = None;
                }
                _ => {}
            }
        }
        let json_of = |index: u64| -> (String, usize) {
            let pieces: Vec<&str> = events
                .iter()
                .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
                .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
                .collect();
            // The first piece is empty, as Anthropic sends it.
            assert_eq!(pieces[0], "");
            (pieces.concat(), pieces.len() - 1)
        };
        let (first, first_pieces) = json_of(2);
        let (second, second_pieces) = json_of(3);
        assert_eq!(first, r#"{"query":"rust"}"#);
        assert_eq!(second, r#"{"tz":"CET"}"#);
        let text: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "let me look ");
        let (event, delta) = &events[events.len() - 2];
        assert_eq!(event, "message_delta");
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        // 1 reasoning word, 3 words, the argument pieces.
        assert_eq!(
            delta["usage"]["output_tokens"],
            4 + first_pieces + second_pieces
        );
        assert_eq!(events[events.len() - 1].0, "message_stop");
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_tools_knob_drives_the_anthropic_adapter_to_tool_calls() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:tools=web_search,reasoning=1")
            .await
            .unwrap();
        assert_eq!(
            events,
            vec![
                Ok(ProviderEvent::ReasoningDelta { text: "r0 ".into() }),
                Ok(ProviderEvent::ReasoningSignature {
                    signature: MOCK_SIGNATURE.into(),
                }),
                Ok(ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "toolu_mock_0_0".into(),
                    name: "web_search".into(),
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{\"".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "query".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "\":\"".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "say".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: " three".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: " words".into()
                }),
                Ok(ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "\"}".into()
                }),
                // 1 reasoning word and 7 pieces.
                usage(5, 8),
                Ok(ProviderEvent::Finish {
                    reason: FinishReason::ToolCalls
                }),
            ]
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_round_with_tool_results_answers_words_that_echo_the_last_result() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        let messages = json!([
            {"role": "user", "content": "search rust"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "toolu_mock_0_0", "name": "web_search", "input": {"query": "rust"}},
                {"type": "tool_use", "id": "toolu_given", "name": "get_time", "input": {"tz": "CET"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_mock_0_0", "content": "first result"},
                {"type": "tool_result", "tool_use_id": "toolu_given",
                 "content": [{"type": "text", "text": "12:00 in Paris"}]},
            ]},
        ]);
        let body = http
            .post(format!("{}/v1/messages", base_url(&mock)))
            .header(crate::mock_upstream::SCRIPT_HEADER, CALLS)
            .json(&json!({
                "model": "mock:len=1",
                "max_tokens": 100,
                "messages": messages,
                "stream": true,
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events = events_of(&body);
        let text: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "found: 12:00 in Paris w0 ");
        assert!(!body.contains("tool_use\""), "{body}");
        // "search rust", "let me look", "first result", "12:00 in Paris".
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 10);
        assert_eq!(
            events[events.len() - 2].1["delta"]["stop_reason"],
            "end_turn"
        );

        // Non-streaming, the first round: the whole tool_use blocks.
        let body: Value = http
            .post(format!("{}/v1/messages", base_url(&mock)))
            .header(crate::mock_upstream::SCRIPT_HEADER, CALLS)
            .json(&json!({
                "model": "mock",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "search rust"}],
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["stop_reason"], "tool_use");
        assert_eq!(
            body["content"],
            json!([
                {"type": "text", "text": "let me look "},
                {"type": "tool_use", "id": "toolu_mock_0_0", "name": "web_search", "input": {"query": "rust"}},
                {"type": "tool_use", "id": "toolu_given", "name": "get_time", "input": {"tz": "CET"}},
            ])
        );
        let recorded = mock.last_recorded("/v1/messages").unwrap();
        assert_eq!(recorded.body["messages"][0]["content"], "search rust");
        mock.stop().await;
    }
}
