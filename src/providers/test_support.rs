//! Helpers shared by the adapters' tests ([`super::openai`], [`super::anthropic`],
//! [`super::gemini`]).
//!
//! # Layout
//! - reading the recorded bodies in `tests/fixtures/{provider}/`;
//! - running a body through the real body driver, [`events_from_body`], in pieces of any size
//!   (or with a broken connection), and collecting what it yields;
//! - short constructors for the expected events;
//! - retry-delay inputs: response headers and a fixed "now";
//! - a message's attachments (an image, a PDF, a text file) and their base64.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};

use super::sse::{SseMapper, events_from_body};
use super::{FinishReason, Part, ProviderError, ProviderEvent, Usage};
use bytes::Bytes;

/// The bytes of `tests/fixtures/{provider}/{name}`.
pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Feeds `pieces` through the real body driver with mapper `M` and collects every item; an
/// `Err` piece is a broken connection with that cause.
pub fn run_pieces<M, B>(pieces: Vec<Result<B, String>>) -> Vec<Result<ProviderEvent, ProviderError>>
where
    M: SseMapper,
    B: AsRef<[u8]> + Send + 'static,
{
    futures::executor::block_on(
        events_from_body::<M, _, _>(futures::stream::iter(pieces)).collect(),
    )
}

/// Feeds `body` through the real body driver in pieces of `size` bytes.
pub fn run_body<M: SseMapper>(
    body: &[u8],
    size: usize,
) -> Vec<Result<ProviderEvent, ProviderError>> {
    let pieces: Vec<Result<Vec<u8>, String>> = body.chunks(size).map(|c| Ok(c.to_vec())).collect();
    run_pieces::<M, _>(pieces)
}

/// Runs a body in 7-byte pieces, checking that 1, 2, 3, 64 bytes and the whole body give
/// the same events.
pub fn run_in_pieces<M: SseMapper>(
    name: &str,
    body: &[u8],
) -> Vec<Result<ProviderEvent, ProviderError>> {
    let events = run_body::<M>(body, 7);
    for size in [1, 2, 3, 64, body.len().max(1)] {
        assert_eq!(
            run_body::<M>(body, size),
            events,
            "{name} in {size}-byte pieces"
        );
    }
    events
}

/// Runs the fixture `tests/fixtures/{provider}/{name}` with [`run_in_pieces`].
pub fn run_fixture<M: SseMapper>(
    provider: &str,
    name: &str,
) -> Vec<Result<ProviderEvent, ProviderError>> {
    run_in_pieces::<M>(name, &fixture(provider, name))
}

pub fn text(t: &str) -> ProviderEvent {
    ProviderEvent::TextDelta { text: t.into() }
}

pub fn reasoning(t: &str) -> ProviderEvent {
    ProviderEvent::ReasoningDelta { text: t.into() }
}

pub fn usage(input: u64, output: u64, reasoning: u64, cached: u64) -> ProviderEvent {
    ProviderEvent::Usage {
        usage: Usage {
            input_tokens: input,
            output_tokens: output,
            reasoning_tokens: reasoning,
            cached_input_tokens: cached,
        },
    }
}

pub fn finish(reason: FinishReason) -> ProviderEvent {
    ProviderEvent::Finish { reason }
}

/// The events as a successful stream yields them.
pub fn oks(events: &[ProviderEvent]) -> Vec<Result<ProviderEvent, ProviderError>> {
    events.iter().cloned().map(Ok).collect()
}

/// Response headers from `(name, value)` pairs.
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// An RFC 3339 time, for a fixed "now".
pub fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// An image, a PDF and a text file, with their base64 below.
pub fn attachments() -> Vec<Part> {
    vec![
        Part::Image {
            media_type: "image/png".into(),
            data: Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
        },
        Part::Document {
            media_type: "application/pdf".into(),
            filename: "report.pdf".into(),
            data: Bytes::from_static(b"%PDF-1.7\n"),
        },
        Part::Text("notes.txt:\nbuy milk".into()),
    ]
}
pub const PNG_BASE64: &str = "iVBORw0KGgo=";
pub const PDF_BASE64: &str = "JVBERi0xLjcK";

/// One tool step as every adapter's test sends it: the tool offered, then a user message, the
/// assistant's two parallel calls (no text), and their results (the second an error).
pub fn tool_step() -> (Vec<super::ToolSpec>, Vec<super::ChatMessage>) {
    use super::{ChatMessage, ToolCall, ToolResult, ToolSpec};
    use serde_json::json;
    let tools = vec![ToolSpec {
        name: "web_search".into(),
        description: "Search the web".into(),
        parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}}),
    }];
    let messages = vec![
        ChatMessage::text("user", "find rust"),
        ChatMessage {
            tool_calls: vec![
                ToolCall {
                    id: "call_1".into(),
                    name: "web_search".into(),
                    arguments: r#"{"query":"rust"}"#.into(),
                    input: json!({"query": "rust"}),
                    signature: Some("sig-1".into()),
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "read_site".into(),
                    arguments: r#"{"url":"https://x"}"#.into(),
                    input: json!({"url": "https://x"}),
                    signature: None,
                },
            ],
            ..ChatMessage::text("assistant", "")
        },
        ChatMessage {
            tool_results: vec![
                ToolResult {
                    call_id: "call_1".into(),
                    name: "web_search".into(),
                    content: r#"[{"title":"Rust"}]"#.into(),
                    is_error: false,
                },
                ToolResult {
                    call_id: "call_2".into(),
                    name: "read_site".into(),
                    content: "unreachable".into(),
                    is_error: true,
                },
            ],
            ..ChatMessage::text("tool", "")
        },
    ];
    (tools, messages)
}
