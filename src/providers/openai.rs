//! OpenAI-compatible Chat Completions adapter (OpenAI, OpenRouter, DeepSeek, xAI, Groq, Ollama,
//! vLLM, llama.cpp, Gemini's compatibility endpoint, …).
//!
//! Sends `POST {base_url}/chat/completions` with `stream: true` and
//! `stream_options.include_usage` (a user message with attachments gets list content: `text`,
//! `image_url` and `file` parts with `data:` URLs), decodes the SSE body with [`super::sse`] and maps each
//! `chat.completion.chunk` to [`ProviderEvent`]s. The servers differ in small ways that all end
//! up in the same events: reasoning arrives as `delta.reasoning_content` (DeepSeek, vLLM) or
//! `delta.reasoning` (OpenRouter, Ollama); usage comes on its own last chunk with `choices: []`
//! or `null`, or on the finishing chunk; errors after the stream started come as a `data:` line
//! with an `error` object (or vLLM's `{"object":"error"}`) on an HTTP 200.
//!
//! The reply always ends the same way: `Usage` (if the server reported any) then one `Finish`,
//! emitted when the stream ends (`[DONE]` or a clean end of body after a `finish_reason`), or a
//! single `Err`, after which the stream ends.
//!
//! # Layout
//! - constants and [`OpenAiConfig`];
//! - [`handle_openai_error`] and the `retry-after` parsing;
//! - [`stream`], and `sse::events_from_body` driving the decoder and this module's `SseMapper` over any body;
//! - `ChunkMapper`: the pure frame-to-event mapping, tested with fixture files;
//! - private wire structs and small named mapping functions;
//! - tests (fixtures in `tests/fixtures/openai/`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap};
use serde::{Deserialize, Serialize};

use super::sse::{SseItem, SseMapper, events_from_body};
use super::{
    ChatMessage, ChatRequest, FinishReason, Part, ProviderError, ProviderEvent, ProviderStream,
    ToolChoice, Usage,
};
use crate::telemetry::error_chain;

/// Path of the endpoint, appended to [`OpenAiConfig::base_url`].
const CHAT_COMPLETIONS_PATH: &str = "/chat/completions";
/// The `data:` payload that ends an OpenAI stream.
const DONE_MARKER: &str = "[DONE]";
/// How much of a non-JSON error body is kept as the message.
const MAX_RAW_ERROR_CHARS: usize = 500;

/// Where and how to reach one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider name recorded in events: `openai`, `openrouter`, `deepseek`, …
    pub name: String,
    /// The API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: secrecy::SecretString,
    /// `reasoning_effort` for reasoning models (`low`, `medium`, `high`); only ever set for
    /// models with the reasoning capability, never sent otherwise.
    pub reasoning_effort: Option<String>,
}

/// Maps a non-2xx answer to [`ProviderError::Http`]: the message comes from the JSON error body
/// (`error.message`, or vLLM's top-level `message`) or the raw text; the retry delay from
/// `retry-after-ms`, then `retry-after` (seconds or HTTP date, relative to `now`), then a
/// "try again in 20s" hint in the message.
pub fn handle_openai_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> ProviderError {
    let message = openai_error_message(body).unwrap_or_else(|| {
        let raw = body.trim();
        if raw.is_empty() {
            status
                .canonical_reason()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
        } else {
            raw.chars().take(MAX_RAW_ERROR_CHARS).collect()
        }
    });
    let retry_after =
        retry_after_from_headers(headers, now).or_else(|| retry_after_from_message(&message));
    ProviderError::Http {
        status: status.as_u16(),
        message,
        retry_after,
    }
}

/// The delay asked for by `retry-after-ms` (milliseconds), else `retry-after` (seconds, or an
/// HTTP date turned into a delay from `now`, never negative).
pub fn retry_after_from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(parse_non_negative_number) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Some(seconds) = parse_non_negative_number(value) {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// OpenAI's 429 messages end in "Please try again in 20s." (or `1.5s`, `6m0s`, `120ms`).
fn retry_after_from_message(message: &str) -> Option<Duration> {
    const HINT: &str = "try again in ";
    let start = message.find(HINT)? + HINT.len();
    let token = message[start..].split_whitespace().next()?;
    parse_go_duration(token.trim_end_matches(['.', ',', ')']))
}

/// Parses durations like `20s`, `1.5s`, `6m0s`, `1h2m`, `120ms`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn parse_non_negative_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// Starts a streamed completion. HTTP and connection errors are returned here; everything after
/// the response head arrives in the stream.
pub async fn stream(
    http: &reqwest::Client,
    config: &OpenAiConfig,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    let url = format!(
        "{}{CHAT_COMPLETIONS_PATH}",
        config.base_url.trim_end_matches('/')
    );
    let body = openai_request(config, request);
    let response = http
        .post(url)
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&config.api_key))
        .header(ACCEPT, "text/event-stream")
        .json(&body)
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
        return Err(handle_openai_error(status, &headers, &text, Utc::now()));
    }
    Ok(events_from_body::<ChunkMapper, _, _>(
        response.bytes_stream().map_err(|e| error_chain(&e)),
    ))
}

/// The request body: the messages in Chat Completions' shapes, the tools, streaming with usage.
fn openai_request<'a>(config: &'a OpenAiConfig, request: &'a ChatRequest) -> OpenAiRequest<'a> {
    OpenAiRequest {
        model: &request.model,
        messages: request.messages.iter().flat_map(openai_messages).collect(),
        tools: request.tools.iter().map(openai_tool).collect(),
        stream: true,
        stream_options: OpenAiStreamOptions {
            include_usage: true,
        },
        reasoning_effort: config.reasoning_effort.as_deref(),
        temperature: request.options.temperature,
        max_tokens: request.options.max_tokens,
        max_completion_tokens: request.options.max_completion_tokens,
        tool_choice: request
            .options
            .tool_choice
            .as_ref()
            .map(|choice| match choice {
                ToolChoice::Auto => serde_json::json!("auto"),
                ToolChoice::None => serde_json::json!("none"),
                ToolChoice::Required => serde_json::json!("required"),
                ToolChoice::Function(name) => {
                    serde_json::json!({"type": "function", "function": {"name": name}})
                }
            }),
    }
}

/// Maps the `data:` payloads of one stream to events. Pure: no I/O, so fixtures drive it.
///
/// `Usage` and `Finish` are held back until the stream ends, because servers send them in either
/// order (usage on its own chunk after the finishing one, or on the finishing chunk itself).
#[derive(Debug, Default)]
struct ChunkMapper {
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// Tool-call indexes already announced with `ToolCallStart`.
    started_tools: Vec<u32>,
    /// `[DONE]`, an error or the end was handled; later input is ignored.
    done: bool,
}

impl SseMapper for ChunkMapper {
    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError> {
        Self::on_item(self, item)
    }

    fn on_end(&mut self, cause: Option<&str>) -> Result<Vec<ProviderEvent>, ProviderError> {
        Self::on_end(self, cause)
    }

    fn is_done(&self) -> bool {
        Self::is_done(self)
    }
}

impl ChunkMapper {
    fn is_done(&self) -> bool {
        self.done
    }

    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError> {
        match item {
            // `: keep-alive`, `: OPENROUTER PROCESSING`
            SseItem::Comment(_) => Ok(Vec::new()),
            SseItem::Event(event) => self.on_data(&event.data),
        }
    }

    fn on_data(&mut self, data: &str) -> Result<Vec<ProviderEvent>, ProviderError> {
        let data = data.trim();
        if self.done || data.is_empty() {
            return Ok(Vec::new());
        }
        if data == DONE_MARKER {
            return Ok(self.close());
        }
        let chunk: OpenAiChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => return Err(self.fail(format!("malformed chunk ({e}): {data}"))),
        };
        if let Some(message) = openai_chunk_error(&chunk) {
            return Err(self.fail(message));
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(openai_usage_to_ours(usage));
        }
        let mut events = Vec::new();
        let Some(choice) = chunk.choices.and_then(|choices| choices.into_iter().next()) else {
            return Ok(events);
        };
        if let Some(delta) = choice.delta {
            let reasoning =
                non_empty(delta.reasoning_content).or_else(|| non_empty(delta.reasoning));
            if let Some(text) = reasoning {
                events.push(ProviderEvent::ReasoningDelta { text });
            }
            if let Some(text) = non_empty(delta.content) {
                events.push(ProviderEvent::TextDelta { text });
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                self.map_tool_call(position, call, &mut events);
            }
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            self.finish = Some(openai_finish_reason_to_ours(&reason));
        }
        Ok(events)
    }

    /// The body ended without `[DONE]`: fine after a `finish_reason`, an error otherwise.
    fn on_end(&mut self, cause: Option<&str>) -> Result<Vec<ProviderEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.finish.is_none() {
            let message = match cause {
                Some(cause) => format!("stream ended early: {cause}"),
                None => "stream ended early".to_owned(),
            };
            return Err(self.fail(message));
        }
        Ok(self.close())
    }

    fn map_tool_call(
        &mut self,
        position: usize,
        call: OpenAiToolCallDelta,
        events: &mut Vec<ProviderEvent>,
    ) {
        // Some servers omit `index` when there is one call per chunk.
        let index = call
            .index
            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
        let (name, arguments) = match call.function {
            Some(function) => (function.name, function.arguments),
            None => (None, None),
        };
        let id = non_empty(call.id);
        let name = non_empty(name);
        // Some servers repeat the id on every piece: announce each call once.
        if (id.is_some() || name.is_some()) && !self.started_tools.contains(&index) {
            self.started_tools.push(index);
            events.push(ProviderEvent::ToolCallStart {
                index,
                id: id.unwrap_or_else(|| format!("call_{index}")),
                name: name.unwrap_or_default(),
            });
        }
        if let Some(arguments) = non_empty(arguments) {
            events.push(ProviderEvent::ToolCallDelta { index, arguments });
        }
    }

    fn close(&mut self) -> Vec<ProviderEvent> {
        self.done = true;
        let mut events = Vec::with_capacity(2);
        if let Some(usage) = self.usage.take() {
            events.push(ProviderEvent::Usage { usage });
        }
        // `[DONE]` without a finish_reason: the reply ended, for no stated reason.
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

// ---- wire structs ----

#[derive(Serialize)]
struct OpenAiRequest<'a> {
    model: &'a str,
    messages: Vec<OpenAiMessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OpenAiToolOut<'a>>,
    stream: bool,
    stream_options: OpenAiStreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct OpenAiStreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct OpenAiMessageOut<'a> {
    role: &'a str,
    /// `null` for an assistant turn that only called tools.
    content: Option<OpenAiContentOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OpenAiToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// `{type: "function", function: {name, description, parameters}}`.
#[derive(Serialize)]
struct OpenAiToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: OpenAiFunctionOut<'a>,
}

#[derive(Serialize)]
struct OpenAiFunctionOut<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

/// `{id, type: "function", function: {name, arguments}}` in an assistant message.
#[derive(Serialize)]
struct OpenAiToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OpenAiCallFunctionOut<'a>,
}

#[derive(Serialize)]
struct OpenAiCallFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// A plain string, or a list of content parts when the message has attachments.
#[derive(Serialize)]
#[serde(untagged)]
enum OpenAiContentOut<'a> {
    Text(&'a str),
    Parts(Vec<OpenAiContentPartOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OpenAiContentPartOut<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: OpenAiImageUrlOut },
    File { file: OpenAiFileOut<'a> },
}

#[derive(Serialize)]
struct OpenAiImageUrlOut {
    /// A `data:` URL.
    url: String,
}

#[derive(Serialize)]
struct OpenAiFileOut<'a> {
    filename: &'a str,
    /// A `data:` URL.
    file_data: String,
}

/// A `chat.completion.chunk`, or an error object sent in its place.
#[derive(Deserialize)]
struct OpenAiChunk {
    choices: Option<Vec<OpenAiChoice>>,
    usage: Option<OpenAiUsage>,
    /// OpenAI / OpenRouter: `{"error": {"message": …}}`.
    error: Option<OpenAiErrorField>,
    /// vLLM: `{"object": "error", "message": …}`.
    object: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    delta: Option<OpenAiDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiDelta {
    content: Option<String>,
    /// DeepSeek, vLLM.
    reasoning_content: Option<String>,
    /// OpenRouter, Ollama.
    reasoning: Option<String>,
    tool_calls: Option<Vec<OpenAiToolCallDelta>>,
}

#[derive(Deserialize)]
struct OpenAiToolCallDelta {
    index: Option<u32>,
    id: Option<String>,
    function: Option<OpenAiFunctionDelta>,
}

#[derive(Deserialize)]
struct OpenAiFunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<OpenAiPromptTokensDetails>,
    completion_tokens_details: Option<OpenAiCompletionTokensDetails>,
    /// DeepSeek's name for cached input tokens.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiPromptTokensDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiCompletionTokensDetails {
    reasoning_tokens: Option<u64>,
}

/// An error body: `{"error": {...}}`, `{"error": "text"}` or vLLM's `{"object":"error",...}`.
#[derive(Deserialize)]
struct OpenAiErrorBody {
    error: Option<OpenAiErrorField>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpenAiErrorField {
    Object {
        message: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        code: Option<serde_json::Value>,
    },
    Text(String),
}

// ---- mapping functions ----

/// One message on the wire. Without parts it is `{role, content: "<text>"}` as always; a user
/// message with parts gets a list: its text (unless blank), then each part in order. Only user
/// messages may carry images and files in Chat Completions, so the parts of other roles are
/// dropped and they keep their plain text.
///
/// An assistant message that called tools carries them as `tool_calls` (its content `null`
/// when it said nothing); a `tool` message becomes one `{role: "tool", tool_call_id, content}`
/// per result.
fn openai_messages(message: &ChatMessage) -> Vec<OpenAiMessageOut<'_>> {
    if message.role == "tool" {
        return message
            .tool_results
            .iter()
            .map(|result| OpenAiMessageOut {
                role: "tool",
                content: Some(OpenAiContentOut::Text(&result.content)),
                tool_calls: Vec::new(),
                tool_call_id: Some(&result.call_id),
            })
            .collect();
    }
    let mut out = openai_message(message);
    out.tool_calls = message
        .tool_calls
        .iter()
        .map(|call| OpenAiToolCallOut {
            id: &call.id,
            kind: "function",
            function: OpenAiCallFunctionOut {
                name: &call.name,
                arguments: &call.arguments,
            },
        })
        .collect();
    if !out.tool_calls.is_empty() && message.content.is_empty() {
        out.content = None;
    }
    vec![out]
}

fn openai_tool(tool: &super::ToolSpec) -> OpenAiToolOut<'_> {
    OpenAiToolOut {
        kind: "function",
        function: OpenAiFunctionOut {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }
}

fn openai_message(message: &ChatMessage) -> OpenAiMessageOut<'_> {
    let content = if message.parts.is_empty() || message.role != "user" {
        OpenAiContentOut::Text(&message.content)
    } else {
        let text = (!message.content.trim().is_empty()).then_some(OpenAiContentPartOut::Text {
            text: &message.content,
        });
        OpenAiContentOut::Parts(
            text.into_iter()
                .chain(message.parts.iter().map(openai_content_part))
                .collect(),
        )
    };
    OpenAiMessageOut {
        role: &message.role,
        content: Some(content),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

fn openai_content_part(part: &Part) -> OpenAiContentPartOut<'_> {
    match part {
        Part::Text(text) => OpenAiContentPartOut::Text { text },
        Part::Image { media_type, data } => OpenAiContentPartOut::ImageUrl {
            image_url: OpenAiImageUrlOut {
                url: data_url(media_type, data),
            },
        },
        Part::Document {
            media_type,
            filename,
            data,
        } => OpenAiContentPartOut::File {
            file: OpenAiFileOut {
                filename,
                file_data: data_url(media_type, data),
            },
        },
    }
}

/// `data:<media_type>;base64,<data>`.
fn data_url(media_type: &str, data: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

fn openai_finish_reason_to_ours(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

fn openai_usage_to_ours(usage: &OpenAiUsage) -> Usage {
    Usage {
        input_tokens: usage.prompt_tokens.unwrap_or(0),
        output_tokens: usage.completion_tokens.unwrap_or(0),
        reasoning_tokens: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        cached_input_tokens: usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(usage.prompt_cache_hit_tokens)
            .unwrap_or(0),
    }
}

fn openai_error_field_message(error: &OpenAiErrorField) -> String {
    match error {
        OpenAiErrorField::Object {
            message: Some(message),
            ..
        } if !message.is_empty() => message.clone(),
        OpenAiErrorField::Object { kind, code, .. } => {
            let code = code.as_ref().map(|c| match c {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            kind.clone()
                .or(code)
                .unwrap_or_else(|| "unknown error".to_owned())
        }
        OpenAiErrorField::Text(text) => text.clone(),
    }
}

/// The message of an error object sent as a stream chunk, if the chunk is one.
fn openai_chunk_error(chunk: &OpenAiChunk) -> Option<String> {
    if let Some(error) = &chunk.error {
        return Some(openai_error_field_message(error));
    }
    if chunk.object.as_deref() == Some("error") {
        return Some(
            chunk
                .message
                .clone()
                .unwrap_or_else(|| "unknown error".to_owned()),
        );
    }
    None
}

/// The message of a JSON error body, if the body is one.
fn openai_error_message(body: &str) -> Option<String> {
    let parsed: OpenAiErrorBody = serde_json::from_str(body).ok()?;
    match (&parsed.error, parsed.message) {
        (Some(error), _) => Some(openai_error_field_message(error)),
        (None, Some(message)) => Some(message),
        (None, None) => None,
    }
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::mock_upstream::MockUpstream;
    use crate::providers::test_support::{self, finish, headers, oks, reasoning, text, usage, utc};

    fn fixture(name: &str) -> Vec<u8> {
        test_support::fixture("openai", name)
    }

    fn run_body(body: &[u8], size: usize) -> Vec<Result<ProviderEvent, ProviderError>> {
        test_support::run_body::<ChunkMapper>(body, size)
    }

    /// Runs a fixture in 7-byte pieces (and other sizes, checked to give the same result).
    fn run_fixture(name: &str) -> Vec<Result<ProviderEvent, ProviderError>> {
        test_support::run_fixture::<ChunkMapper>("openai", name)
    }

    #[test]
    fn plain_text_without_usage() {
        assert_eq!(
            run_fixture("plain_text.sse"),
            oks(&[
                text("Hello"),
                text("! How"),
                text(" can I help?"),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn usage_on_its_own_last_chunk_comes_before_finish() {
        assert_eq!(
            run_fixture("usage_own_chunk.sse"),
            oks(&[
                text("The answer"),
                text(" is 4."),
                usage(1200, 80, 64, 1024),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn crlf_line_endings_give_the_same_events() {
        assert!(
            fixture("usage_own_chunk_crlf.sse")
                .windows(2)
                .any(|w| w == b"\r\n")
        );
        assert_eq!(
            run_fixture("usage_own_chunk_crlf.sse"),
            run_fixture("usage_own_chunk.sse")
        );
    }

    #[test]
    fn usage_on_the_finishing_chunk_gemini_style() {
        assert_eq!(
            run_fixture("usage_on_finish_chunk.sse"),
            oks(&[
                text("Rust is"),
                text(" a systems language."),
                usage(8, 12, 0, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn deepseek_reasoning_content_keepalives_and_cache_hits() {
        assert_eq!(
            run_fixture("deepseek_reasoning.sse"),
            oks(&[
                reasoning("Okay"),
                reasoning(", the user"),
                reasoning(" asks 9.11 vs 9.8."),
                text("9.8"),
                text(" is larger."),
                usage(13, 120, 98, 64),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn tool_call_deltas_start_once_then_stream_arguments() {
        assert_eq!(
            run_fixture("tool_calls.sse"),
            oks(&[
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "call_DdmO9pD3xa9XTPNJ32zg2hcA".into(),
                    name: "get_weather".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{\"loc".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "ation\": \"Paris\"}".into()
                },
                ProviderEvent::ToolCallStart {
                    index: 1,
                    id: "call_Ab12Cd34Ef56Gh78Ij90Kl12".into(),
                    name: "get_time".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 1,
                    arguments: "{\"tz\":\"CET\"}".into()
                },
                usage(85, 52, 0, 0),
                finish(FinishReason::ToolCalls)
            ])
        );
    }

    #[test]
    fn openrouter_processing_comments_and_reasoning_are_handled() {
        assert_eq!(
            run_fixture("openrouter_processing.sse"),
            oks(&[
                reasoning("Simple greeting."),
                text("Hi"),
                text(" there!"),
                usage(9, 12, 5, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn a_mid_stream_error_object_with_http_200_ends_the_stream() {
        let mut expected = oks(&[text("Once upon"), text(" a time")]);
        expected.push(Err(ProviderError::Stream(
            "Provider disconnected unexpectedly".into(),
        )));
        assert_eq!(run_fixture("openrouter_midstream_error.sse"), expected);
    }

    #[test]
    fn vllm_usage_chunk_with_null_choices() {
        assert_eq!(
            run_fixture("vllm_choices_null.sse"),
            oks(&[
                text("Paris"),
                text(" is the capital"),
                usage(24, 16, 0, 0),
                finish(FinishReason::Length)
            ])
        );
    }

    #[test]
    fn vllm_error_object_ends_the_stream() {
        let mut expected = oks(&[text("Hel")]);
        expected.push(Err(ProviderError::Stream(
            "The decoder prompt is longer than the maximum model length".into(),
        )));
        assert_eq!(run_fixture("vllm_error.sse"), expected);
    }

    #[test]
    fn a_body_ending_before_any_finish_reason_is_an_error() {
        let mut expected = oks(&[text("Partial")]);
        expected.push(Err(ProviderError::Stream("stream ended early".into())));
        assert_eq!(run_fixture("ended_early.sse"), expected);
    }

    #[test]
    fn a_body_ending_after_finish_reason_without_done_is_complete() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"length\"}]}\n\n";
        assert_eq!(
            run_body(body, 5),
            oks(&[text("ok"), finish(FinishReason::Length)])
        );
    }

    #[test]
    fn a_last_done_without_blank_line_is_still_seen() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\ndata: [DONE]";
        assert_eq!(
            run_body(body, 4),
            oks(&[text("ok"), finish(FinishReason::Other)])
        );
    }

    #[test]
    fn a_broken_connection_keeps_its_cause() {
        let pieces: Vec<Result<&'static [u8], String>> = vec![
            Ok(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"),
            Err("connection reset".into()),
        ];
        let events = test_support::run_pieces::<ChunkMapper, _>(pieces);
        let mut expected = oks(&[text("a")]);
        expected.push(Err(ProviderError::Stream(
            "stream ended early: connection reset".into(),
        )));
        assert_eq!(events, expected);
    }

    #[test]
    fn malformed_json_is_a_stream_error() {
        let mut mapper = ChunkMapper::default();
        let error = mapper.on_data("{\"choices\": [").unwrap_err();
        assert!(matches!(error, ProviderError::Stream(m) if m.starts_with("malformed chunk")));
        assert!(mapper.is_done());
        assert_eq!(mapper.on_end(None), Ok(Vec::new()));
    }

    #[test]
    fn data_after_done_is_ignored() {
        let mut mapper = ChunkMapper::default();
        assert_eq!(
            mapper.on_data("[DONE]").unwrap(),
            vec![finish(FinishReason::Other)]
        );
        assert_eq!(
            mapper.on_data("{\"choices\":[{\"delta\":{\"content\":\"late\"}}]}"),
            Ok(Vec::new())
        );
    }

    #[test]
    fn finish_reasons_map_to_ours() {
        for (theirs, ours) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("tool_calls", FinishReason::ToolCalls),
            ("function_call", FinishReason::ToolCalls),
            ("content_filter", FinishReason::ContentFilter),
            ("eos", FinishReason::Other),
        ] {
            assert_eq!(openai_finish_reason_to_ours(theirs), ours, "{theirs}");
        }
    }

    #[test]
    fn reasoning_effort_is_sent_only_when_set() {
        let messages = [ChatMessage {
            role: "user".into(),
            content: "hi".into(),
            parts: Vec::new(),
            ..Default::default()
        }];
        let body = |effort: Option<&'static str>| {
            serde_json::to_value(OpenAiRequest {
                model: "gpt-5",
                messages: messages.iter().map(openai_message).collect(),
                tools: Vec::new(),
                stream: true,
                stream_options: OpenAiStreamOptions {
                    include_usage: true,
                },
                reasoning_effort: effort,
                temperature: None,
                max_tokens: None,
                max_completion_tokens: None,
                tool_choice: None,
            })
            .unwrap()
        };
        assert_eq!(body(Some("medium"))["reasoning_effort"], "medium");
        assert!(body(None).get("reasoning_effort").is_none());
    }

    /// The body [`stream`] sends for `messages`, as text.
    fn request_body(messages: &[ChatMessage]) -> String {
        request_body_with_tools(messages, Vec::new())
    }

    fn request_body_with_tools(
        messages: &[ChatMessage],
        tools: Vec<super::super::ToolSpec>,
    ) -> String {
        let config = OpenAiConfig {
            name: "openai".into(),
            base_url: String::new(),
            api_key: "k".into(),
            reasoning_effort: None,
        };
        let request = ChatRequest {
            model: "gpt-4o".into(),
            messages: messages.to_vec(),
            tools,
            ..Default::default()
        };
        serde_json::to_string(&openai_request(&config, &request)).unwrap()
    }

    fn message(role: &str, content: &str, parts: Vec<Part>) -> ChatMessage {
        ChatMessage {
            parts,
            ..ChatMessage::text(role, content)
        }
    }

    #[test]
    fn tools_calls_and_results_go_out_in_chat_completions_shapes() {
        use crate::providers::test_support::tool_step;
        let (tools, messages) = tool_step();
        let body: serde_json::Value =
            serde_json::from_str(&request_body_with_tools(&messages, tools)).unwrap();
        assert_eq!(
            body["tools"],
            serde_json::json!([{"type": "function", "function": {
                "name": "web_search", "description": "Search the web",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            }}])
        );
        assert_eq!(
            body["messages"],
            serde_json::json!([
                {"role": "user", "content": "find rust"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "web_search", "arguments": "{\"query\":\"rust\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "read_site", "arguments": "{\"url\":\"https://x\"}"}},
                ]},
                {"role": "tool", "content": "[{\"title\":\"Rust\"}]", "tool_call_id": "call_1"},
                {"role": "tool", "content": "unreachable", "tool_call_id": "call_2"},
            ])
        );
    }

    use crate::providers::test_support::{PDF_BASE64, PNG_BASE64, attachments};

    #[test]
    fn messages_without_parts_are_sent_exactly_as_before() {
        let body = request_body(&[
            message("system", "be brief", Vec::new()),
            message("user", "hi", Vec::new()),
            message("assistant", "", Vec::new()),
        ]);
        assert_eq!(
            body,
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":""}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn a_user_message_with_parts_sends_its_text_then_each_part_as_content_parts() {
        let body = request_body(&[message("user", "What is in these?", attachments())]);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_BASE64}")}},
                    {"type": "file", "file": {
                        "filename": "report.pdf",
                        "file_data": format!("data:application/pdf;base64,{PDF_BASE64}"),
                    }},
                    {"type": "text", "text": "notes.txt:\nbuy milk"},
                ]}],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn blank_text_is_left_out_and_other_roles_keep_plain_content() {
        let image = || {
            vec![Part::Image {
                media_type: "image/png".into(),
                data: Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
            }]
        };
        let body = request_body(&[
            message("user", " ", image()),
            message("assistant", "a cat", image()),
            message("system", "be brief", image()),
        ]);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_BASE64}")}},
                ]},
                {"role": "assistant", "content": "a cat"},
                {"role": "system", "content": "be brief"},
            ])
        );
    }

    #[tokio::test]
    async fn an_image_reaches_the_upstream_as_a_data_url_through_the_real_http_path() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let config = OpenAiConfig {
            name: "openai".into(),
            base_url: mock.base_url(),
            api_key: "test".into(),
            reasoning_effort: None,
        };
        let request = ChatRequest {
            model: "mock:len=2".into(),
            messages: vec![message(
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
        let recorded = mock.last_recorded("/chat/completions").unwrap();
        assert_eq!(
            recorded.body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "describe this"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}},
            ]}])
        );
        mock.stop().await;
    }

    #[test]
    fn the_api_key_is_redacted_in_debug() {
        let config = OpenAiConfig {
            name: "openai".into(),
            base_url: "https://api.openai.com/v1".into(),
            api_key: "sk-secret".into(),
            reasoning_effort: None,
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-secret"), "{debug}");
        assert!(debug.contains("REDACTED"));
    }

    fn now() -> DateTime<Utc> {
        utc("2015-10-21T07:28:00Z")
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "30")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        let h = headers(&[("retry-after", "20")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn retry_after_as_an_http_date_is_a_delay_from_now() {
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:45 GMT")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(45))
        );
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]);
        assert_eq!(retry_after_from_headers(&h, now()), Some(Duration::ZERO));
    }

    #[test]
    fn unusable_retry_after_values_are_ignored() {
        for value in ["soon", "-3", "NaN", "inf"] {
            let h = headers(&[("retry-after", value)]);
            assert_eq!(retry_after_from_headers(&h, now()), None, "{value}");
        }
        let h = headers(&[("retry-after-ms", "bogus"), ("retry-after", "2")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(2))
        );
    }

    const RATE_LIMIT_BODY: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

    #[test]
    fn a_429_body_gives_the_message_and_header_delay() {
        let h = headers(&[("retry-after", "2")]);
        let error = handle_openai_error(StatusCode::TOO_MANY_REQUESTS, &h, RATE_LIMIT_BODY, now());
        assert_eq!(
            error,
            ProviderError::Http {
                status: 429,
                message: "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn without_headers_the_delay_comes_from_the_message() {
        let error = handle_openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            RATE_LIMIT_BODY,
            now(),
        );
        assert!(matches!(
            error,
            ProviderError::Http { retry_after: Some(d), .. } if d == Duration::from_secs(20)
        ));
    }

    #[test]
    fn go_style_durations_parse() {
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("120ms"), Some(Duration::from_millis(120)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("20"), None);
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn non_json_and_vllm_error_bodies() {
        let error = handle_openai_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "<html>bad gateway</html>\n",
            now(),
        );
        assert_eq!(
            error,
            ProviderError::Http {
                status: 502,
                message: "<html>bad gateway</html>".into(),
                retry_after: None
            }
        );
        let error = handle_openai_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            r#"{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}"#,
            now(),
        );
        assert!(
            matches!(error, ProviderError::Http { status: 400, message, .. } if message == "max_tokens is too large")
        );
        let error = handle_openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            "",
            now(),
        );
        assert!(
            matches!(error, ProviderError::Http { message, .. } if message == "Service Unavailable")
        );
    }
}
