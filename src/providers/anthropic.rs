//! Anthropic Messages adapter (`POST {base_url}/v1/messages` with `stream: true`).
//!
//! A user message with attachments is sent as content blocks: `image` and `document` blocks
//! with base64 sources (and text parts) first, the message text last, as Anthropic recommends.
//!
//! Decodes the SSE body with [`super::sse`] and maps the named events (`message_start`,
//! `content_block_start|delta|stop`, `message_delta`, `message_stop`, `ping`, `error`) to
//! [`ProviderEvent`]s. Text blocks become `TextDelta`, thinking blocks `ReasoningDelta` (their
//! `signature_delta` a `ReasoningSignature`), tool_use blocks `ToolCallStart` plus `ToolCallDelta`s from
//! `input_json_delta`. `ping`, unknown event types, unknown block types (`redacted_thinking`,
//! server tools, …) and unknown delta types (`citations_delta`, …) are ignored, as Anthropic asks.
//!
//! Usage: `message_start` carries `input_tokens` and the cache counts; `message_delta` carries
//! *cumulative* `output_tokens` (each one replaces the last, never adds). `input_tokens` is kept as
//! reported, which for Anthropic excludes cached tokens: `cached_input_tokens` (cache reads) is
//! not a part of `input_tokens` as it is with OpenAI. Cache writes are not in [`Usage`]; the mapper
//! keeps them for later use. Anthropic does not report reasoning tokens separately (they are in
//! `output_tokens`), so `reasoning_tokens` stays 0.
//!
//! The reply always ends the same way: `Usage` then one `Finish` on `message_stop`, or a single
//! `Err` (an `error` event, malformed JSON, or the body ending before `message_stop`), after which
//! the stream ends.
//!
//! # Layout
//! - constants and [`AnthropicConfig`];
//! - [`handle_anthropic_error`] (the delay comes from [`super::openai::retry_after_from_headers`]);
//! - [`stream`], `request_body`, and `sse::events_from_body` driving the decoder and this module's `SseMapper`;
//! - `EventMapper`: the pure event-to-[`ProviderEvent`] mapping, tested with fixture files;
//! - private wire structs and small named mapping functions;
//! - tests (fixtures in `tests/fixtures/anthropic/`).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap};
use serde::{Deserialize, Serialize};

use super::openai::retry_after_from_headers;
use super::sse::{SseItem, SseMapper, events_from_body};
use super::{
    ChatMessage, ChatRequest, FinishReason, Part, ProviderError, ProviderEvent, ProviderStream,
    ToolChoice, Usage,
};
use crate::telemetry::error_chain;

/// The public API root, used when no other is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Path of the endpoint, appended to [`AnthropicConfig::base_url`].
const MESSAGES_PATH: &str = "/v1/messages";
/// The API version this adapter speaks (`anthropic-version` header).
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` without extended thinking (the API requires the field).
const DEFAULT_MAX_TOKENS: u32 = 8192;
/// Room for the answer on top of the thinking budget (`max_tokens` must exceed the budget).
const ANSWER_TOKENS_WITH_THINKING: u32 = 4096;
/// How much of a non-JSON error body is kept as the message.
const MAX_RAW_ERROR_CHARS: usize = 500;

/// Where and how to reach the Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The provider name recorded in events, normally `anthropic`.
    pub name: String,
    /// The API root without the version, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Sent as `x-api-key`.
    pub api_key: secrecy::SecretString,
    /// Extended thinking budget in tokens (the API wants at least 1024); `None` = no thinking.
    pub thinking_budget: Option<u32>,
}

impl AnthropicConfig {
    /// The public API under the name `anthropic`, without extended thinking.
    pub fn new(api_key: impl Into<secrecy::SecretString>) -> Self {
        Self {
            name: "anthropic".to_owned(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            thinking_budget: None,
        }
    }
}

/// Maps a non-2xx answer to [`ProviderError::Http`]: the message comes from the JSON error body
/// (`{"type":"error","error":{"type","message"}}`: the message, else the type) or the raw text;
/// the delay from `retry-after-ms`, then `retry-after` (seconds or HTTP date, relative to `now`).
/// 529 (overloaded) and 429 are retryable like every 5xx.
pub fn handle_anthropic_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> ProviderError {
    let message = anthropic_error_message(body).unwrap_or_else(|| {
        let raw = body.trim();
        if !raw.is_empty() {
            raw.chars().take(MAX_RAW_ERROR_CHARS).collect()
        } else if status.as_u16() == 529 {
            "Overloaded".to_owned()
        } else {
            status
                .canonical_reason()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
        }
    });
    ProviderError::Http {
        status: status.as_u16(),
        message,
        retry_after: retry_after_from_headers(headers, now),
    }
}

/// Starts a streamed message. HTTP and connection errors are returned here; everything after the
/// response head arrives in the stream.
pub async fn stream(
    http: &reqwest::Client,
    config: &AnthropicConfig,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    let url = format!("{}{MESSAGES_PATH}", config.base_url.trim_end_matches('/'));
    let response = http
        .post(url)
        .header(
            "x-api-key",
            secrecy::ExposeSecret::expose_secret(&config.api_key),
        )
        .header("anthropic-version", API_VERSION)
        .header(ACCEPT, "text/event-stream")
        .json(&request_body(config, request))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                ProviderError::Timeout(error_chain(&e))
            } else {
                ProviderError::Connect(error_chain(&e))
            }
        })?;
    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        return Err(handle_anthropic_error(status, &headers, &text, Utc::now()));
    }
    Ok(events_from_body::<EventMapper, _, _>(
        response.bytes_stream().map_err(|e| error_chain(&e)),
    ))
}

/// The request body: system messages joined into `system`, user and assistant turns in
/// `messages` (empty ones dropped: the API rejects empty content; a user turn with parts is not
/// empty), `thinking` when budgeted.
fn request_body<'a>(config: &AnthropicConfig, request: &'a ChatRequest) -> AnthropicRequest<'a> {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == "system" && !m.content.trim().is_empty())
        .map(|m| m.content.as_str())
        .collect();
    let messages = request
        .messages
        .iter()
        .filter(|m| matches!(m.role.as_str(), "user" | "assistant" | "tool"))
        .filter_map(anthropic_message)
        .collect();
    let tools = request
        .tools
        .iter()
        .map(|tool| AnthropicToolOut {
            name: &tool.name,
            description: &tool.description,
            input_schema: &tool.parameters,
        })
        .collect();
    let thinking = config
        .thinking_budget
        .map(|budget_tokens| AnthropicThinking {
            kind: "enabled",
            budget_tokens,
        });
    let answer = request.options.answer_limit();
    AnthropicRequest {
        model: &request.model,
        max_tokens: match config.thinking_budget {
            None => answer.unwrap_or(DEFAULT_MAX_TOKENS),
            Some(budget) => budget.saturating_add(answer.unwrap_or(ANSWER_TOKENS_WITH_THINKING)),
        },
        stream: true,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        tools,
        thinking,
        // Extended thinking refuses a temperature other than its own.
        temperature: request
            .options
            .temperature
            .filter(|_| config.thinking_budget.is_none()),
        tool_choice: request
            .options
            .tool_choice
            .as_ref()
            .map(|choice| match choice {
                ToolChoice::Auto => serde_json::json!({"type": "auto"}),
                ToolChoice::None => serde_json::json!({"type": "none"}),
                ToolChoice::Required => serde_json::json!({"type": "any"}),
                ToolChoice::Function(name) => serde_json::json!({"type": "tool", "name": name}),
            }),
    }
}

/// Maps the named events of one stream to [`ProviderEvent`]s. Pure: no I/O, so fixtures drive it.
#[derive(Debug, Default)]
struct EventMapper {
    usage: Usage,
    /// Cache writes from `message_start` (`cache_creation_input_tokens`); not in [`Usage`] yet.
    cache_creation_input_tokens: u64,
    /// A `message_start` or `message_delta` reported usage.
    usage_seen: bool,
    finish: Option<FinishReason>,
    /// Content block index of each tool_use block, in order; the position is the tool-call index
    /// we report (0, 1, … as with OpenAI), whatever text or thinking blocks came before.
    tool_blocks: Vec<u32>,
    /// `message_stop` or an error was handled; later input is ignored.
    done: bool,
}

impl SseMapper for EventMapper {
    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError> {
        Self::on_item(self, item)
    }

    fn on_end(&mut self, cause: Option<&str>) -> Result<Vec<ProviderEvent>, ProviderError> {
        Self::on_end(self, cause).map(|()| Vec::new())
    }

    fn is_done(&self) -> bool {
        Self::is_done(self)
    }
}

impl EventMapper {
    fn is_done(&self) -> bool {
        self.done
    }

    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError> {
        match item {
            SseItem::Comment(_) => Ok(Vec::new()),
            SseItem::Event(event) => self.on_event(event.event.as_deref(), &event.data),
        }
    }

    /// One event: its `event:` name (when absent, the `type` inside the JSON is used) and data.
    fn on_event(
        &mut self,
        name: Option<&str>,
        data: &str,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        let parse = |data: &str| serde_json::from_str::<AnthropicEvent>(data);
        let (kind, parsed) = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => (name.to_owned(), None),
            None => match parse(data) {
                Ok(event) => (event.kind.clone().unwrap_or_default(), Some(event)),
                Err(e) => return Err(self.fail(format!("malformed event ({e}): {data}"))),
            },
        };
        if !KNOWN_EVENTS.contains(&kind.as_str()) {
            // `ping`, and event types newer than this adapter.
            return Ok(Vec::new());
        }
        let event = match parsed {
            Some(event) => event,
            None => match parse(data) {
                Ok(event) => event,
                Err(e) => {
                    return Err(self.fail(format!("malformed {kind} event ({e}): {data}")));
                }
            },
        };
        let mut events = Vec::new();
        match kind.as_str() {
            "message_start" => {
                if let Some(usage) = event.message.and_then(|m| m.usage) {
                    self.take_usage(&usage);
                }
            }
            "content_block_start" => {
                if let Some(block) = event.content_block {
                    self.on_block_start(event.index.unwrap_or(0), block, &mut events);
                }
            }
            "content_block_delta" => {
                if let Some(delta) = event.delta {
                    self.on_block_delta(event.index.unwrap_or(0), delta, &mut events);
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.finish = Some(anthropic_stop_reason_to_ours(&reason));
                }
                if let Some(usage) = event.usage {
                    self.take_usage(&usage);
                }
            }
            "message_stop" => return Ok(self.close()),
            "error" => {
                let message = event
                    .error
                    .map(|e| anthropic_error_field_message(&e))
                    .unwrap_or_else(|| "unknown error".to_owned());
                return Err(self.fail(message));
            }
            // `content_block_stop`: nothing to say.
            _ => {}
        }
        Ok(events)
    }

    /// The body ended. Before `message_stop` that is an error, whatever came before.
    fn on_end(&mut self, cause: Option<&str>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let message = match cause {
            Some(cause) => format!("stream ended early: {cause}"),
            None => "stream ended early (no message_stop)".to_owned(),
        };
        Err(self.fail(message))
    }

    /// Usage counts are totals so far: each reported field replaces the one kept.
    fn take_usage(&mut self, usage: &AnthropicUsage) {
        self.usage_seen = true;
        if let Some(n) = usage.input_tokens {
            self.usage.input_tokens = n;
        }
        if let Some(n) = usage.output_tokens {
            self.usage.output_tokens = n;
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.usage.cached_input_tokens = n;
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.cache_creation_input_tokens = n;
        }
    }

    fn on_block_start(
        &mut self,
        index: u32,
        block: AnthropicContentBlock,
        events: &mut Vec<ProviderEvent>,
    ) {
        let text = match block.kind.as_str() {
            // A block may start with text already in it (the API sends "" today).
            "text" => non_empty(block.text).map(|text| ProviderEvent::TextDelta { text }),
            "thinking" => {
                non_empty(block.thinking).map(|text| ProviderEvent::ReasoningDelta { text })
            }
            "tool_use" if !self.tool_blocks.contains(&index) => {
                let tool_index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                self.tool_blocks.push(index);
                Some(ProviderEvent::ToolCallStart {
                    index: tool_index,
                    id: block.id.unwrap_or_else(|| format!("toolu_{tool_index}")),
                    name: block.name.unwrap_or_default(),
                })
            }
            // `redacted_thinking`, server tool blocks, block types newer than this adapter.
            _ => None,
        };
        events.extend(text);
    }

    fn on_block_delta(
        &mut self,
        index: u32,
        delta: AnthropicDelta,
        events: &mut Vec<ProviderEvent>,
    ) {
        let event = match delta.kind.as_deref() {
            Some("text_delta") => {
                non_empty(delta.text).map(|text| ProviderEvent::TextDelta { text })
            }
            Some("thinking_delta") => {
                non_empty(delta.thinking).map(|text| ProviderEvent::ReasoningDelta { text })
            }
            Some("input_json_delta") => {
                // Only for blocks announced as tool calls (server tool blocks stream JSON too).
                let tool_index = self.tool_blocks.iter().position(|&block| block == index);
                tool_index
                    .zip(non_empty(delta.partial_json))
                    .map(|(tool_index, arguments)| ProviderEvent::ToolCallDelta {
                        index: u32::try_from(tool_index).unwrap_or(u32::MAX),
                        arguments,
                    })
            }
            Some("signature_delta") => non_empty(delta.signature)
                .map(|signature| ProviderEvent::ReasoningSignature { signature }),
            // `citations_delta`, newer ones.
            _ => None,
        };
        events.extend(event);
    }

    fn close(&mut self) -> Vec<ProviderEvent> {
        self.done = true;
        let mut events = Vec::with_capacity(2);
        if self.usage_seen {
            events.push(ProviderEvent::Usage { usage: self.usage });
        }
        // `message_stop` without a stop_reason: the reply ended, for no stated reason.
        events.push(ProviderEvent::Finish {
            reason: self.finish.take().unwrap_or(FinishReason::Other),
        });
        events
    }

    fn fail(&mut self, message: String) -> ProviderError {
        self.done = true;
        ProviderError::Stream(message)
    }
}

/// Event types the mapper reads; all others (`ping` included) are skipped unparsed.
const KNOWN_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
];

// ---- wire structs ----

#[derive(Serialize)]
struct AnthropicRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<AnthropicMessageParam<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<AnthropicToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<AnthropicThinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct AnthropicToolOut<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a serde_json::Value,
}

#[derive(Serialize)]
struct AnthropicMessageParam<'a> {
    role: &'a str,
    content: AnthropicContentOut<'a>,
}

/// A plain string, or a list of content blocks when the message has attachments.
#[derive(Serialize)]
#[serde(untagged)]
enum AnthropicContentOut<'a> {
    Text(&'a str),
    Blocks(Vec<AnthropicBlockOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicBlockOut<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: AnthropicBase64SourceOut<'a>,
    },
    Document {
        source: AnthropicBase64SourceOut<'a>,
        /// The file name (left out when there is none).
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a serde_json::Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
struct AnthropicBase64SourceOut<'a> {
    /// Always `base64`.
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'a str,
    data: String,
}

#[derive(Serialize)]
struct AnthropicThinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// Any stream event; which fields are set depends on its type.
#[derive(Deserialize)]
struct AnthropicEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `message_start`.
    message: Option<AnthropicMessage>,
    /// `content_block_*`.
    index: Option<u32>,
    /// `content_block_start`.
    content_block: Option<AnthropicContentBlock>,
    /// `content_block_delta` (typed) and `message_delta` (`stop_reason`).
    delta: Option<AnthropicDelta>,
    /// `message_delta`.
    usage: Option<AnthropicUsage>,
    /// `error`.
    error: Option<AnthropicErrorField>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicContentBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    thinking: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicDelta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    partial_json: Option<String>,
    signature: Option<String>,
    stop_reason: Option<String>,
}

/// `{"type":"error","error":{"type":…,"message":…}}`, as an HTTP body or an `error` event.
#[derive(Deserialize)]
struct AnthropicErrorBody {
    error: AnthropicErrorField,
}

#[derive(Deserialize)]
struct AnthropicErrorField {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

// ---- mapping functions ----

/// One user or assistant turn, or `None` when it has nothing to send (the API rejects blank
/// text). Without parts it is `{role, content: "<text>"}` as always. A user turn with parts
/// gets a list of blocks: each part in order, then the text last (unless blank), because
/// Anthropic's vision and PDF guides recommend images and documents before the question.
/// Assistant turns cannot carry images or documents: their parts are dropped.
///
/// An assistant turn that called tools sends its text (unless blank), then a `tool_use` block
/// per call; a `tool` message is the next user turn, one `tool_result` block per result.
fn anthropic_message(message: &ChatMessage) -> Option<AnthropicMessageParam<'_>> {
    if message.role == "tool" {
        if message.tool_results.is_empty() {
            return None;
        }
        let blocks = message
            .tool_results
            .iter()
            .map(|result| AnthropicBlockOut::ToolResult {
                tool_use_id: &result.call_id,
                content: &result.content,
                is_error: result.is_error,
            })
            .collect();
        return Some(AnthropicMessageParam {
            role: "user",
            content: AnthropicContentOut::Blocks(blocks),
        });
    }
    let has_text = !message.content.trim().is_empty();
    if !message.tool_calls.is_empty() {
        let thinking = message
            .thinking
            .as_ref()
            .map(|t| AnthropicBlockOut::Thinking {
                thinking: &t.text,
                signature: &t.signature,
            });
        let text = has_text.then_some(AnthropicBlockOut::Text {
            text: &message.content,
        });
        let calls = message
            .tool_calls
            .iter()
            .map(|call| AnthropicBlockOut::ToolUse {
                id: &call.id,
                name: &call.name,
                input: &call.input,
            });
        return Some(AnthropicMessageParam {
            role: &message.role,
            content: AnthropicContentOut::Blocks(
                thinking.into_iter().chain(text).chain(calls).collect(),
            ),
        });
    }
    let content = if message.parts.is_empty() || message.role != "user" {
        if !has_text {
            return None;
        }
        AnthropicContentOut::Text(&message.content)
    } else {
        let text = has_text.then_some(AnthropicBlockOut::Text {
            text: &message.content,
        });
        let blocks: Vec<AnthropicBlockOut<'_>> = message
            .parts
            .iter()
            .filter_map(anthropic_block)
            .chain(text)
            .collect();
        if blocks.is_empty() {
            return None;
        }
        AnthropicContentOut::Blocks(blocks)
    };
    Some(AnthropicMessageParam {
        role: &message.role,
        content,
    })
}

/// The content block of a part; `None` for a blank text part (the API rejects those).
fn anthropic_block(part: &Part) -> Option<AnthropicBlockOut<'_>> {
    match part {
        Part::Text(text) if text.trim().is_empty() => None,
        Part::Text(text) => Some(AnthropicBlockOut::Text { text }),
        Part::Image { media_type, data } => Some(AnthropicBlockOut::Image {
            source: base64_source(media_type, data),
        }),
        Part::Document {
            media_type,
            filename,
            data,
        } => Some(AnthropicBlockOut::Document {
            source: base64_source(media_type, data),
            title: (!filename.is_empty()).then_some(filename.as_str()),
        }),
    }
}

fn base64_source<'a>(media_type: &'a str, data: &[u8]) -> AnthropicBase64SourceOut<'a> {
    use base64::Engine as _;
    AnthropicBase64SourceOut {
        kind: "base64",
        media_type,
        data: base64::engine::general_purpose::STANDARD.encode(data),
    }
}

fn anthropic_stop_reason_to_ours(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // `pause_turn`, `model_context_window_exceeded`, newer ones.
        _ => FinishReason::Other,
    }
}

fn anthropic_error_field_message(error: &AnthropicErrorField) -> String {
    non_empty(error.message.clone())
        .or_else(|| non_empty(error.kind.clone()))
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// The message of a JSON error body, if the body is one.
fn anthropic_error_message(body: &str) -> Option<String> {
    let parsed: AnthropicErrorBody = serde_json::from_str(body).ok()?;
    Some(anthropic_error_field_message(&parsed.error))
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::mock_upstream::MockUpstream;
    use crate::providers::sse::SseDecoder;
    use crate::providers::test_support::{self, finish, headers, oks, reasoning, text, utc};

    /// Anthropic reports no reasoning tokens of their own: they are in the output tokens.
    fn usage(input: u64, output: u64, cached: u64) -> ProviderEvent {
        test_support::usage(input, output, 0, cached)
    }

    fn fixture(name: &str) -> Vec<u8> {
        test_support::fixture("anthropic", name)
    }

    fn run_body(body: &[u8], size: usize) -> Vec<Result<ProviderEvent, ProviderError>> {
        test_support::run_body::<EventMapper>(body, size)
    }

    /// Runs a fixture in 7-byte pieces (and other sizes, checked to give the same result).
    fn run_fixture(name: &str) -> Vec<Result<ProviderEvent, ProviderError>> {
        test_support::run_fixture::<EventMapper>("anthropic", name)
    }

    /// Feeds a whole fixture to a mapper directly, to look at its state afterwards.
    fn mapper_after(name: &str) -> EventMapper {
        let mut decoder = SseDecoder::new();
        let mut mapper = EventMapper::default();
        let mut items = decoder.feed(&fixture(name));
        items.extend(decoder.finish());
        for item in items {
            mapper.on_item(item).unwrap();
        }
        mapper
    }

    #[test]
    fn plain_text_then_usage_then_stop() {
        assert_eq!(
            run_fixture("plain_text.sse"),
            oks(&[
                text("Hello"),
                text("! How can I"),
                text(" help you today?"),
                usage(25, 12, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    const SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds8L7pPCDcBcNT+uLEZBDChuUCXXK6dTqygRC6jx8SrEFQmT3MpOSBmfV0zTPsArBSxRvoPVXzSrbVUXcHR7E5IEbWAw==";

    #[test]
    fn signed_thinking_goes_back_before_the_tool_calls() {
        let (tools, mut messages) = crate::providers::test_support::tool_step();
        messages[1].thinking = Some(crate::providers::Thinking {
            text: "I should search.".into(),
            signature: "sig".into(),
        });
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages,
            tools,
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(Some(1024)), &request)).unwrap();
        assert_eq!(
            body["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "I should search.", "signature": "sig"})
        );
        assert_eq!(body["messages"][1]["content"][1]["type"], "tool_use");
    }

    #[test]
    fn thinking_deltas_are_reasoning_and_the_signature_follows_them() {
        assert_eq!(
            run_fixture("thinking.sse"),
            oks(&[
                reasoning("Let me compare 9.11 and 9.8."),
                reasoning("\n\n0.8 > 0.11, so 9.8 is larger."),
                ProviderEvent::ReasoningSignature {
                    signature: SIGNATURE.into()
                },
                text("9.8"),
                text(" is larger."),
                usage(42, 58, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn tool_use_blocks_start_once_and_stream_their_json_without_empty_pieces() {
        assert_eq!(
            run_fixture("tool_use.sse"),
            oks(&[
                text("Okay, let me check the weather."),
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{\"location\":".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: " \"San Fra".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "ncisco, CA\"}".into()
                },
                ProviderEvent::ToolCallStart {
                    index: 1,
                    id: "toolu_01Lm7Qe3ZzY8bJ8sJc4kYx2P".into(),
                    name: "get_time".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 1,
                    arguments: "{\"tz\": \"America/Los_Angeles\"}".into()
                },
                usage(472, 89, 0),
                finish(FinishReason::ToolCalls)
            ])
        );
    }

    #[test]
    fn pings_and_unknown_events_blocks_and_deltas_are_ignored() {
        assert_eq!(
            run_fixture("pings_and_unknown_events.sse"),
            oks(&[
                text("Hi"),
                text(" there!"),
                usage(9, 6, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn output_tokens_are_cumulative_so_the_last_message_delta_wins() {
        // 40 then 64: the reply used 64 output tokens, not 104.
        assert_eq!(
            run_fixture("cumulative_usage.sse"),
            oks(&[
                text("Chapter one"),
                text(" begins"),
                usage(310, 64, 0),
                finish(FinishReason::Length)
            ])
        );
    }

    #[test]
    fn cache_reads_are_cached_input_and_cache_writes_are_kept_aside() {
        assert_eq!(
            run_fixture("cache_read.sse"),
            oks(&[
                text("Cached."),
                usage(21, 3, 2048),
                finish(FinishReason::Stop)
            ])
        );
        let mapper = mapper_after("cache_read.sse");
        assert_eq!(mapper.cache_creation_input_tokens, 188);
        assert!(mapper.is_done());
    }

    #[test]
    fn a_mid_stream_overloaded_error_ends_the_stream() {
        let mut expected = oks(&[text("Once upon"), text(" a time")]);
        expected.push(Err(ProviderError::Stream("Overloaded".into())));
        assert_eq!(run_fixture("midstream_error.sse"), expected);
    }

    #[test]
    fn a_body_ending_before_message_stop_is_an_error_even_after_a_stop_reason() {
        let mut expected = oks(&[text("Partial")]);
        expected.push(Err(ProviderError::Stream(
            "stream ended early (no message_stop)".into(),
        )));
        assert_eq!(run_fixture("ended_early.sse"), expected);
    }

    #[test]
    fn a_broken_connection_keeps_its_cause() {
        let pieces: Vec<Result<&'static [u8], String>> = vec![
            Ok(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"),
            Err("connection reset".into()),
        ];
        let events = test_support::run_pieces::<EventMapper, _>(pieces);
        let mut expected = oks(&[text("a")]);
        expected.push(Err(ProviderError::Stream(
            "stream ended early: connection reset".into(),
        )));
        assert_eq!(events, expected);
    }

    #[test]
    fn a_last_message_stop_without_blank_line_is_still_seen() {
        let body = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}";
        assert_eq!(
            run_body(body, 5),
            oks(&[usage(0, 2, 0), finish(FinishReason::Stop)])
        );
    }

    #[test]
    fn without_an_event_name_the_json_type_is_used() {
        let mut mapper = EventMapper::default();
        assert_eq!(
            mapper.on_event(
                None,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#
            ),
            Ok(vec![text("x")])
        );
        assert_eq!(mapper.on_event(None, r#"{"type":"ping"}"#), Ok(Vec::new()));
        assert_eq!(
            mapper.on_event(None, r#"{"type":"message_stop"}"#),
            Ok(vec![finish(FinishReason::Other)])
        );
    }

    #[test]
    fn unknown_events_are_skipped_even_when_their_data_is_not_json() {
        let mut mapper = EventMapper::default();
        assert_eq!(mapper.on_event(Some("ping"), ""), Ok(Vec::new()));
        assert_eq!(
            mapper.on_event(Some("novelty"), "<not json>"),
            Ok(Vec::new())
        );
        assert!(!mapper.is_done());
    }

    #[test]
    fn malformed_json_of_a_known_event_is_a_stream_error() {
        let mut mapper = EventMapper::default();
        let error = mapper
            .on_event(Some("content_block_delta"), "{\"index\": ")
            .unwrap_err();
        assert!(
            matches!(&error, ProviderError::Stream(m) if m.starts_with("malformed content_block_delta event")),
            "{error:?}"
        );
        assert!(mapper.is_done());
        assert_eq!(mapper.on_end(None), Ok(()));
    }

    #[test]
    fn events_after_message_stop_are_ignored() {
        let mut mapper = EventMapper::default();
        assert_eq!(
            mapper.on_event(Some("message_stop"), r#"{"type":"message_stop"}"#),
            Ok(vec![finish(FinishReason::Other)])
        );
        assert_eq!(
            mapper.on_event(
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}"#
            ),
            Ok(Vec::new())
        );
        assert_eq!(mapper.on_end(None), Ok(()));
    }

    #[test]
    fn input_json_of_a_block_that_is_no_tool_use_is_dropped() {
        let mut mapper = EventMapper::default();
        let start = r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#;
        assert_eq!(
            mapper.on_event(Some("content_block_start"), start),
            Ok(Vec::new())
        );
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":"}}"#;
        assert_eq!(
            mapper.on_event(Some("content_block_delta"), delta),
            Ok(Vec::new())
        );
    }

    #[test]
    fn usage_in_a_message_delta_replaces_the_message_start_counts() {
        let mut mapper = EventMapper::default();
        mapper
            .on_event(
                Some("message_start"),
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            )
            .unwrap();
        mapper
            .on_event(
                Some("message_delta"),
                r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn"},"usage":{"input_tokens":30,"cache_read_input_tokens":7,"output_tokens":9}}"#,
            )
            .unwrap();
        assert_eq!(
            mapper.on_event(Some("message_stop"), r#"{"type":"message_stop"}"#),
            Ok(vec![usage(30, 9, 7), finish(FinishReason::Other)])
        );
    }

    #[test]
    fn stop_reasons_map_to_ours() {
        for (theirs, ours) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("pause_turn", FinishReason::Other),
            ("model_context_window_exceeded", FinishReason::Other),
        ] {
            assert_eq!(anthropic_stop_reason_to_ours(theirs), ours, "{theirs}");
        }
    }

    fn config(thinking_budget: Option<u32>) -> AnthropicConfig {
        AnthropicConfig {
            thinking_budget,
            ..AnthropicConfig::new("sk-ant-secret")
        }
    }

    fn message(role: &str, content: &str) -> ChatMessage {
        ChatMessage::text(role, content)
    }

    #[test]
    fn tools_calls_and_results_go_out_as_tool_use_and_tool_result_blocks() {
        let (tools, messages) = crate::providers::test_support::tool_step();
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages,
            tools,
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(None), &request)).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"name": "web_search", "description": "Search the web",
                    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "find rust"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "web_search", "input": {"query": "rust"}},
                    {"type": "tool_use", "id": "call_2", "name": "read_site", "input": {"url": "https://x"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "[{\"title\":\"Rust\"}]"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "unreachable", "is_error": true},
                ]},
            ])
        );
    }

    #[test]
    fn the_request_body_joins_system_messages_and_keeps_user_and_assistant_turns() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![
                message("system", "Be brief."),
                message("user", "Hi"),
                message("assistant", "Hello!"),
                message("system", "Answer in French."),
                message("tool", "ignored"),
                message("user", "How are you?"),
                message("assistant", ""),
            ],
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(None), &request)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 8192,
                "stream": true,
                "system": "Be brief.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "How are you?"},
                ],
            })
        );
    }

    fn with_parts(role: &str, content: &str, parts: Vec<Part>) -> ChatMessage {
        ChatMessage {
            parts,
            ..message(role, content)
        }
    }

    use crate::providers::test_support::{PDF_BASE64, PNG_BASE64, attachments};

    #[test]
    fn messages_without_parts_are_sent_exactly_as_before() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![
                message("system", "Be brief."),
                message("user", "Hi"),
                message("assistant", ""),
            ],
            ..Default::default()
        };
        let body = serde_json::to_string(&request_body(&config(None), &request)).unwrap();
        assert_eq!(
            body,
            r#"{"model":"claude-sonnet-4-5","max_tokens":8192,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}]}"#
        );
    }

    #[test]
    fn a_user_message_with_parts_sends_the_parts_first_then_its_text() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![
                message("system", "Be brief."),
                with_parts("user", "What is in these?", attachments()),
            ],
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(None), &request)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 8192,
                "stream": true,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_BASE64},
                        "title": "report.pdf",
                    },
                    {"type": "text", "text": "notes.txt:\nbuy milk"},
                    {"type": "text", "text": "What is in these?"},
                ]}],
            })
        );
    }

    #[test]
    fn a_user_turn_of_parts_alone_is_kept_and_assistant_parts_are_dropped() {
        let image = || {
            vec![Part::Image {
                media_type: "image/png".into(),
                data: Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
            }]
        };
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![
                with_parts("user", "  ", image()),
                with_parts("assistant", "a cat", image()),
                with_parts("assistant", "", image()),
                with_parts("user", "", vec![Part::Text(" ".into())]),
            ],
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(None), &request)).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
                ]},
                {"role": "assistant", "content": "a cat"},
            ])
        );
    }

    #[tokio::test]
    async fn an_image_reaches_the_upstream_as_a_base64_block_through_the_real_http_path() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let config = AnthropicConfig {
            base_url: format!("http://127.0.0.1:{}", mock.port()),
            ..AnthropicConfig::new("test")
        };
        let request = ChatRequest {
            model: "mock:len=2".into(),
            messages: vec![with_parts(
                "user",
                "describe this",
                vec![Part::Image {
                    media_type: "image/jpeg".into(),
                    data: Bytes::from_static(b"\xff\xd8\xff\xe0"),
                }],
            )],
            ..Default::default()
        };
        let events: Vec<_> = stream(&reqwest::Client::new(), &config, &request)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events.last(), Some(&Ok(finish(FinishReason::Stop))));
        let recorded = mock.last_recorded("/messages").unwrap();
        assert_eq!(
            recorded.body["messages"],
            json!([{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A=="}},
                {"type": "text", "text": "describe this"},
            ]}])
        );
        mock.stop().await;
    }

    #[test]
    fn with_a_thinking_budget_max_tokens_leaves_room_for_the_answer() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![message("user", "Think.")],
            ..Default::default()
        };
        let body = serde_json::to_value(request_body(&config(Some(2048)), &request)).unwrap();
        assert_eq!(body["max_tokens"], 2048 + 4096);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert_eq!(body.get("system"), None::<&Value>);
    }

    #[test]
    fn the_api_key_is_redacted_in_debug() {
        let debug = format!("{:?}", config(Some(1024)));
        assert!(!debug.contains("sk-ant-secret"), "{debug}");
        assert!(debug.contains("REDACTED"));
        assert!(debug.contains("1024"));
    }

    fn now() -> DateTime<Utc> {
        utc("2025-10-21T07:28:00Z")
    }

    #[test]
    fn a_429_gives_the_message_and_the_retry_after_seconds() {
        let h = headers(&[
            ("retry-after", "17"),
            ("anthropic-ratelimit-requests-reset", "2025-10-21T07:28:17Z"),
        ]);
        let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50 requests per minute."},"request_id":"req_011CUMxyz"}"#;
        let error = handle_anthropic_error(StatusCode::TOO_MANY_REQUESTS, &h, body, now());
        assert_eq!(
            error,
            ProviderError::Http {
                status: 429,
                message: "This request would exceed the rate limit for your organization of 50 requests per minute.".into(),
                retry_after: Some(Duration::from_secs(17)),
            }
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn a_529_overloaded_is_retryable() {
        let status = StatusCode::from_u16(529).unwrap();
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let error = handle_anthropic_error(status, &HeaderMap::new(), body, now());
        assert_eq!(
            error,
            ProviderError::Http {
                status: 529,
                message: "Overloaded".into(),
                retry_after: None,
            }
        );
        assert!(error.is_retryable());
        let bare = handle_anthropic_error(status, &HeaderMap::new(), "", now());
        assert!(matches!(bare, ProviderError::Http { message, .. } if message == "Overloaded"));
    }

    #[test]
    fn other_error_bodies() {
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":""}}"#;
        let error =
            handle_anthropic_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body, now());
        assert!(
            matches!(&error, ProviderError::Http { status: 401, message, .. } if message == "authentication_error"),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        let error = handle_anthropic_error(
            StatusCode::BAD_GATEWAY,
            &headers(&[("retry-after-ms", "250")]),
            "<html>bad gateway</html>\n",
            now(),
        );
        assert_eq!(
            error,
            ProviderError::Http {
                status: 502,
                message: "<html>bad gateway</html>".into(),
                retry_after: Some(Duration::from_millis(250)),
            }
        );
    }
}
