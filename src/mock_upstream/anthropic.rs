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

use super::{Knobs, MockMessage, Step, WireFormat, event_stream, set_retry_after, word};

/// A stand-in for the signature Anthropic puts on thinking blocks.
const MOCK_SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

/// `POST /v1/messages`.
pub(super) async fn messages(
    request: HttpRequest,
    body: Bytes,
    counter: web::Data<AtomicUsize>,
) -> HttpResponse {
    let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed: MessagesRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
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
        knobs,
    };
    if parsed.stream.unwrap_or(false) {
        event_stream(reply)
    } else {
        reply.knobs.wait_whole_reply().await;
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
    knobs: Knobs,
}

impl Reply {
    fn output_tokens(&self) -> u64 {
        (self.knobs.len + self.knobs.reasoning) as u64
    }

    /// The thinking block, if any, is block 0 and the text block follows it.
    fn text_index(&self) -> usize {
        usize::from(self.knobs.reasoning > 0)
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

    fn ping() -> Bytes {
        Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
    }

    fn message(&self) -> Value {
        let mut content = Vec::with_capacity(2);
        if self.knobs.reasoning > 0 {
            content.push(json!({
                "type": "thinking",
                "thinking": self.knobs.words(true),
                "signature": MOCK_SIGNATURE,
            }));
        }
        content.push(json!({"type": "text", "text": self.knobs.words(false)}));
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": "end_turn",
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
/// block (the thinking block closes with its signature), `message_delta` and `message_stop`.
impl WireFormat for Reply {
    fn knobs(&self) -> &Knobs {
        &self.knobs
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
                    frames.push(Self::block_delta(
                        0,
                        json!({"type": "signature_delta", "signature": MOCK_SIGNATURE}),
                    ));
                    frames.push(Self::block_stop(0));
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
                json!({"type": "thinking_delta", "thinking": word(index, true)}),
            )],
            Step::Word {
                index,
                reasoning: false,
            } => vec![Self::block_delta(
                self.text_index(),
                json!({"type": "text_delta", "text": word(index, false)}),
            )],
            Step::Error => vec![Bytes::from_static(
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            )],
            Step::Done => vec![
                Self::block_stop(self.text_index()),
                Self::frame(&json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": self.output_tokens()},
                })),
                Self::frame(&json!({"type": "message_stop"})),
            ],
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
}
