//! Google Gemini adapter (the native `generateContent` API, not its OpenAI-compatible endpoint).
//!
//! Sends `POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse` with the key in
//! `x-goog-api-key`, decodes the SSE body with [`super::sse`] (Gemini frames events with CRLF)
//! and maps each `GenerateContentResponse` chunk to [`ProviderEvent`]s. A user message's
//! attachments follow its text as `inlineData` parts (base64). Gemini differs from
//! Chat Completions in ways that matter here:
//! - there is no `[DONE]`: the stream simply ends after the chunk carrying `finishReason`;
//! - `usageMetadata` comes on every chunk as a running total, so only the latest is kept;
//! - thought summaries (with `generationConfig.thinkingConfig.includeThoughts`) are ordinary
//!   text parts flagged `thought: true`, and the last part may be an empty text that only
//!   carries a `thoughtSignature`;
//! - a function call arrives whole (`functionCall {name, args}`), never in pieces, and without
//!   an id, so ids are made up (`call_{index}`) unless the server sends one;
//! - HTTP errors carry the retry delay in the body (`google.rpc.RetryInfo`), not in headers.
//!
//! The reply always ends the same way: `Usage` (if the server reported any) then one `Finish`,
//! emitted at the end of the body once a `finishReason` was seen, or a single `Err`, after which
//! the stream ends.
//!
//! # Layout
//! - constants and [`GeminiConfig`];
//! - [`handle_gemini_error`] and the `RetryInfo` parsing;
//! - [`stream`], and `sse::events_from_body` driving the decoder and this module's `SseMapper`;
//! - `ChunkMapper`: the pure frame-to-event mapping, tested with fixture files;
//! - private wire structs and small named mapping functions;
//! - tests (fixtures in `tests/fixtures/gemini/`).

use std::time::Duration;

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

/// The public endpoint, the default for [`GeminiConfig::base_url`].
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The header that carries the API key.
const API_KEY_HEADER: &str = "x-goog-api-key";
/// The `@type` of the error detail that says how long to wait.
const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";
/// How much of a non-JSON error body is kept as the message.
const MAX_RAW_ERROR_CHARS: usize = 500;

/// Where and how to reach the Gemini API.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// The provider name recorded in events, normally `gemini`.
    pub name: String,
    /// The API root without the version, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Sent as `x-goog-api-key`.
    pub api_key: secrecy::SecretString,
    /// Ask for thought summaries (`thinkingConfig.includeThoughts`), streamed as reasoning.
    pub include_thoughts: bool,
}

/// Maps a non-2xx answer to [`ProviderError::Http`]: the message is the body's `error.message`
/// (else its `error.status`, else the raw text); the retry delay comes from `retry-after-ms` /
/// `retry-after` headers if present (Google sends none today), else from the body's
/// `google.rpc.RetryInfo` detail (`"retryDelay": "34.4s"`).
pub fn handle_gemini_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> ProviderError {
    let error = gemini_error_body(body);
    let message = error.as_ref().map(gemini_error_message).unwrap_or_else(|| {
        let raw = body.trim();
        if raw.is_empty() {
            status
                .canonical_reason()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
        } else {
            raw.chars().take(MAX_RAW_ERROR_CHARS).collect()
        }
    });
    let retry_after = retry_after_from_headers(headers, now)
        .or_else(|| error.as_ref().and_then(gemini_retry_delay));
    ProviderError::Http {
        status: status.as_u16(),
        message,
        retry_after,
    }
}

/// The error object of a Google error body: `{"error": {...}}`, or the same wrapped in a
/// one-element array (what the non-SSE streaming endpoint answers).
fn gemini_error_body(body: &str) -> Option<GeminiError> {
    // Checked first: serde would also read an array as a struct, field by field.
    if body.trim_start().starts_with('[') {
        let parsed: Vec<GeminiErrorBody> = serde_json::from_str(body).ok()?;
        return parsed.into_iter().next()?.error;
    }
    serde_json::from_str::<GeminiErrorBody>(body).ok()?.error
}

/// The delay of the first `RetryInfo` detail.
fn gemini_retry_delay(error: &GeminiError) -> Option<Duration> {
    error
        .details
        .iter()
        .filter(|d| d.kind.as_deref() == Some(RETRY_INFO_TYPE))
        .find_map(|d| d.retry_delay.as_deref().and_then(parse_proto_duration))
}

/// Parses a protobuf JSON duration: seconds with an `s` suffix and up to nine fraction digits
/// (`34.4s`, `1s`, `0.000500s`), exactly (no float rounding). Negative delays are refused.
fn parse_proto_duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(Duration::new(seconds, nanos))
}

/// Starts a streamed reply. HTTP and connection errors are returned here; everything after the
/// response head arrives in the stream.
pub async fn stream(
    http: &reqwest::Client,
    config: &GeminiConfig,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    let url = format!(
        "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
        config.base_url.trim_end_matches('/'),
        encode_path_segment(&request.model)
    );
    let response = http
        .post(url)
        .header(
            API_KEY_HEADER,
            secrecy::ExposeSecret::expose_secret(&config.api_key),
        )
        .header(ACCEPT, "text/event-stream")
        .json(&gemini_request(request, config.include_thoughts))
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
        return Err(handle_gemini_error(status, &headers, &text, Utc::now()));
    }
    Ok(events_from_body::<ChunkMapper, _, _>(
        response.bytes_stream().map_err(|e| error_chain(&e)),
    ))
}

/// The request body: system messages go to `systemInstruction`, the rest to `contents` with
/// Gemini's roles (`assistant` is `model`, everything else `user`).
fn gemini_request(request: &ChatRequest, include_thoughts: bool) -> GeminiRequest<'_> {
    let system: Vec<GeminiPartOut<'_>> = request
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| GeminiPartOut::Text { text: &m.content })
        .collect();
    let contents = request
        .messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| {
            let role = if m.role == "assistant" {
                "model"
            } else {
                "user"
            };
            GeminiContentOut {
                role,
                parts: gemini_parts(m, role == "user"),
            }
        })
        .collect();
    let tools = (!request.tools.is_empty())
        .then(|| GeminiToolOut {
            function_declarations: request
                .tools
                .iter()
                .map(|tool| GeminiFunctionDeclarationOut {
                    name: &tool.name,
                    description: &tool.description,
                    parameters_json_schema: &tool.parameters,
                })
                .collect(),
        })
        .into_iter()
        .collect();
    GeminiRequest {
        contents,
        tools,
        system_instruction: (!system.is_empty()).then_some(GeminiSystemOut { parts: system }),
        generation_config: Some(GeminiGenerationConfigOut {
            thinking_config: include_thoughts.then_some(GeminiThinkingConfigOut {
                include_thoughts: true,
            }),
            temperature: request.options.temperature,
            max_output_tokens: request.options.answer_limit(),
        })
        .filter(|c| {
            c.thinking_config.is_some() || c.temperature.is_some() || c.max_output_tokens.is_some()
        }),
        tool_config: request.options.tool_choice.as_ref().map(|choice| {
            let config = match choice {
                ToolChoice::Auto => serde_json::json!({"mode": "AUTO"}),
                ToolChoice::None => serde_json::json!({"mode": "NONE"}),
                ToolChoice::Required => serde_json::json!({"mode": "ANY"}),
                ToolChoice::Function(name) => {
                    serde_json::json!({"mode": "ANY", "allowedFunctionNames": [name]})
                }
            };
            serde_json::json!({ "functionCallingConfig": config })
        }),
    }
}

/// Percent-encodes what cannot stand in a path segment (a model name is normally plain).
fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:=,@!$&'()*+;".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Maps the `data:` payloads of one stream to events. Pure: no I/O, so fixtures drive it.
///
/// `Usage` and `Finish` are held back until the body ends: usage is a running total that every
/// chunk replaces, and the end of the body is the only end-of-reply marker Gemini sends.
#[derive(Debug, Default)]
struct ChunkMapper {
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// Function calls seen so far; the next one gets this index.
    tool_calls: u32,
    /// An error or the end was handled; later input is ignored.
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
        self.done
    }
}

impl ChunkMapper {
    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError> {
        match item {
            SseItem::Comment(_) => Ok(Vec::new()),
            SseItem::Event(event) => self.on_data(&event.data),
        }
    }

    fn on_data(&mut self, data: &str) -> Result<Vec<ProviderEvent>, ProviderError> {
        let data = data.trim();
        if self.done || data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: GeminiChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => return Err(self.fail(format!("malformed chunk ({e}): {data}"))),
        };
        if let Some(error) = &chunk.error {
            return Err(self.fail(gemini_error_message(error)));
        }
        if let Some(usage) = &chunk.usage_metadata {
            // A running total: replace, never add.
            self.usage = Some(gemini_usage_to_ours(usage));
        }
        // A blocked prompt gets no candidates at all, only `promptFeedback.blockReason`.
        if let Some(reason) = chunk
            .prompt_feedback
            .and_then(|f| f.block_reason)
            .filter(|r| !r.is_empty())
        {
            self.finish = Some(gemini_finish_reason_to_ours(&reason, false));
        }
        let mut events = Vec::new();
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return Ok(events);
        };
        let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
        for part in parts {
            self.map_part(part, &mut events);
        }
        if let Some(reason) = candidate.finish_reason.filter(|r| !r.is_empty()) {
            self.finish = Some(gemini_finish_reason_to_ours(&reason, self.tool_calls > 0));
        }
        Ok(events)
    }

    fn map_part(&mut self, part: GeminiPart, events: &mut Vec<ProviderEvent>) {
        if let Some(call) = part.function_call {
            let index = self.tool_calls;
            self.tool_calls = self.tool_calls.saturating_add(1);
            let arguments = call
                .args
                .map_or_else(|| "{}".to_owned(), |args| args.to_string());
            events.push(ProviderEvent::ToolCallStart {
                index,
                id: non_empty(call.id).unwrap_or_else(|| format!("call_{index}")),
                name: call.name.unwrap_or_default(),
            });
            events.push(ProviderEvent::ToolCallDelta { index, arguments });
            if let Some(signature) = non_empty(part.thought_signature) {
                events.push(ProviderEvent::ToolCallSignature { index, signature });
            }
            return;
        }
        // An empty text is the carrier of a `thoughtSignature`; nothing to show.
        let Some(text) = non_empty(part.text) else {
            return;
        };
        events.push(if part.thought.unwrap_or(false) {
            ProviderEvent::ReasoningDelta { text }
        } else {
            ProviderEvent::TextDelta { text }
        });
    }

    /// The body ended: the reply is complete if a `finishReason` was seen, cut short otherwise.
    fn on_end(&mut self, cause: Option<&str>) -> Result<Vec<ProviderEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        let Some(reason) = self.finish.take() else {
            let message = match cause {
                Some(cause) => format!("stream ended early: {cause}"),
                None => "stream ended early".to_owned(),
            };
            return Err(self.fail(message));
        };
        self.done = true;
        let mut events = Vec::with_capacity(2);
        if let Some(usage) = self.usage.take() {
            events.push(ProviderEvent::Usage { usage });
        }
        events.push(ProviderEvent::Finish { reason });
        Ok(events)
    }

    fn fail(&mut self, message: String) -> ProviderError {
        self.done = true;
        ProviderError::Stream(message)
    }
}

// ---- wire structs ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiRequest<'a> {
    contents: Vec<GeminiContentOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<GeminiToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<GeminiSystemOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GeminiGenerationConfigOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct GeminiContentOut<'a> {
    role: &'static str,
    parts: Vec<GeminiPartOut<'a>>,
}

#[derive(Serialize)]
struct GeminiSystemOut<'a> {
    parts: Vec<GeminiPartOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiToolOut<'a> {
    function_declarations: Vec<GeminiFunctionDeclarationOut<'a>>,
}

/// The schema goes as `parametersJsonSchema` (full JSON Schema), not `parameters` (Gemini's
/// OpenAPI subset, which refuses keywords such as `additionalProperties` that MCP servers use).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiFunctionDeclarationOut<'a> {
    name: &'a str,
    description: &'a str,
    parameters_json_schema: &'a serde_json::Value,
}

/// A text part, an inline file (images and PDFs alike), a call the model made, or its result.
#[derive(Serialize)]
#[serde(untagged)]
enum GeminiPartOut<'a> {
    Text {
        text: &'a str,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: GeminiBlobOut<'a>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: GeminiFunctionCallOut<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: GeminiFunctionResponseOut<'a>,
    },
}

#[derive(Serialize)]
struct GeminiFunctionCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: &'a serde_json::Value,
}

#[derive(Serialize)]
struct GeminiFunctionResponseOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    /// `{"content": text}`, or `{"error": text}` for a failed call.
    response: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBlobOut<'a> {
    mime_type: &'a str,
    /// Base64.
    data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiGenerationConfigOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<GeminiThinkingConfigOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiThinkingConfigOut {
    include_thoughts: bool,
}

/// A `GenerateContentResponse` chunk, or an error object sent in its place.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiChunk {
    #[serde(default)]
    candidates: Vec<GeminiCandidate>,
    usage_metadata: Option<GeminiUsage>,
    prompt_feedback: Option<GeminiPromptFeedback>,
    error: Option<GeminiError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate {
    /// Absent when the candidate was blocked.
    content: Option<GeminiContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct GeminiContent {
    #[serde(default)]
    parts: Vec<GeminiPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPart {
    text: Option<String>,
    thought: Option<bool>,
    function_call: Option<GeminiFunctionCall>,
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct GeminiFunctionCall {
    /// Only some models send one.
    id: Option<String>,
    name: Option<String>,
    args: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
struct GeminiErrorBody {
    error: Option<GeminiError>,
}

/// A `google.rpc.Status`: `{"code": 429, "message": …, "status": "RESOURCE_EXHAUSTED",
/// "details": [...]}`.
#[derive(Deserialize)]
struct GeminiError {
    message: Option<String>,
    status: Option<String>,
    #[serde(default)]
    details: Vec<GeminiErrorDetail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiErrorDetail {
    #[serde(rename = "@type")]
    kind: Option<String>,
    retry_delay: Option<String>,
}

// ---- mapping functions ----

/// The parts of one content. Without attachments (or outside a user turn, where the model's
/// own turns carry text only) it is the text alone, as always; a user turn with attachments
/// sends its text first (unless blank), then each attachment in order.
///
/// A model turn that called tools sends its text (unless blank), then a `functionCall` part per
/// call (with its `thoughtSignature`); a `tool` message is a user turn of `functionResponse`
/// parts. Ids go out only when the server gave them (the adapter makes up `call_{n}`).
fn gemini_parts(message: &ChatMessage, is_user: bool) -> Vec<GeminiPartOut<'_>> {
    if message.role == "tool" {
        return message
            .tool_results
            .iter()
            .map(|result| {
                let key = if result.is_error { "error" } else { "content" };
                GeminiPartOut::FunctionResponse {
                    function_response: GeminiFunctionResponseOut {
                        id: server_id(&result.call_id),
                        name: &result.name,
                        response: serde_json::json!({ key: result.content }),
                    },
                }
            })
            .collect();
    }
    if !message.tool_calls.is_empty() {
        let text = (!message.content.trim().is_empty()).then_some(GeminiPartOut::Text {
            text: &message.content,
        });
        let calls = message
            .tool_calls
            .iter()
            .map(|call| GeminiPartOut::FunctionCall {
                function_call: GeminiFunctionCallOut {
                    id: server_id(&call.id),
                    name: &call.name,
                    args: &call.input,
                },
                thought_signature: call.signature.as_deref(),
            });
        return text.into_iter().chain(calls).collect();
    }
    let text = GeminiPartOut::Text {
        text: &message.content,
    };
    if message.parts.is_empty() || !is_user {
        return vec![text];
    }
    let text = (!message.content.trim().is_empty()).then_some(text);
    text.into_iter()
        .chain(message.parts.iter().map(gemini_part))
        .collect()
}

/// A call id the server sent, or `None` for one the adapter made up (`call_{n}`).
fn server_id(id: &str) -> Option<&str> {
    let made_up = id
        .strip_prefix("call_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (!made_up).then_some(id)
}

fn gemini_part(part: &Part) -> GeminiPartOut<'_> {
    match part {
        Part::Text(text) => GeminiPartOut::Text { text },
        Part::Image { media_type, data }
        | Part::Document {
            media_type, data, ..
        } => GeminiPartOut::InlineData {
            inline_data: inline_data(media_type, data),
        },
    }
}

fn inline_data<'a>(media_type: &'a str, data: &[u8]) -> GeminiBlobOut<'a> {
    use base64::Engine as _;
    GeminiBlobOut {
        mime_type: media_type,
        data: base64::engine::general_purpose::STANDARD.encode(data),
    }
}

/// Gemini's `finishReason` in the AI SDK's vocabulary. Gemini says `STOP` after function calls
/// too; like the AI SDK's Google provider, that is reported as `tool-calls`.
fn gemini_finish_reason_to_ours(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_tool_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        "MALFORMED_FUNCTION_CALL" => FinishReason::Error,
        _ => FinishReason::Other,
    }
}

fn gemini_usage_to_ours(usage: &GeminiUsage) -> Usage {
    Usage {
        input_tokens: usage.prompt_token_count.unwrap_or(0),
        output_tokens: usage.candidates_token_count.unwrap_or(0),
        reasoning_tokens: usage.thoughts_token_count.unwrap_or(0),
        cached_input_tokens: usage.cached_content_token_count.unwrap_or(0),
    }
}

fn gemini_error_message(error: &GeminiError) -> String {
    non_empty(error.message.clone())
        .or_else(|| non_empty(error.status.clone()))
        .unwrap_or_else(|| "unknown error".to_owned())
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;
    use crate::mock_upstream::MockUpstream;
    use crate::providers::test_support::{self, finish, oks, reasoning, text, usage, utc};

    fn fixture(name: &str) -> Vec<u8> {
        test_support::fixture("gemini", name)
    }

    fn run_body(body: &[u8], size: usize) -> Vec<Result<ProviderEvent, ProviderError>> {
        test_support::run_body::<ChunkMapper>(body, size)
    }

    /// Runs a fixture in 7-byte pieces (and other sizes, checked to give the same result).
    fn run_fixture(name: &str) -> Vec<Result<ProviderEvent, ProviderError>> {
        let body = fixture(name);
        assert!(
            body.windows(4).any(|w| w == b"\r\n\r\n"),
            "{name} is not CRLF-framed"
        );
        test_support::run_in_pieces::<ChunkMapper>(name, &body)
    }

    #[test]
    fn plain_text_ends_at_eof_with_usage_then_stop() {
        assert_eq!(
            run_fixture("plain_text.sse"),
            oks(&[
                text("Hello"),
                text("! How can I"),
                text(" help you today?\n"),
                usage(4, 9, 0, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn thought_parts_are_reasoning_and_a_signature_only_part_is_ignored() {
        assert_eq!(
            run_fixture("thoughts_then_text.sse"),
            oks(&[
                reasoning("**Comparing the numbers**\n\nI'm looking at 9.11 and 9.8."),
                reasoning(" Comparing the tenths digit settles it."),
                text("9.8 is larger"),
                text(", because 0.8 > 0.11."),
                usage(12, 13, 118, 0),
                finish(FinishReason::Stop)
            ])
        );
    }

    #[test]
    fn function_calls_arrive_whole_with_made_up_ids() {
        assert_eq!(
            run_fixture("function_call.sse"),
            oks(&[
                text("Let me check both."),
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "call_0".into(),
                    name: "get_weather".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: r#"{"location":"Paris","unit":"celsius"}"#.into()
                },
                ProviderEvent::ToolCallStart {
                    index: 1,
                    id: "call_1".into(),
                    name: "get_time".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 1,
                    arguments: r#"{"tz":"CET"}"#.into()
                },
                usage(85, 31, 0, 0),
                finish(FinishReason::ToolCalls)
            ])
        );
    }

    #[test]
    fn running_usage_keeps_the_last_chunks_totals_not_their_sum() {
        let events = run_fixture("running_usage.sse");
        assert_eq!(
            events,
            oks(&[
                text("One"),
                text(", two"),
                text(", three"),
                text("."),
                usage(1200, 6, 0, 1024),
                finish(FinishReason::Stop)
            ])
        );
        // Summing the chunks would give 4800 input and 15 output tokens.
        assert!(!events.contains(&Ok(usage(4800, 15, 0, 4096))));
    }

    #[test]
    fn max_tokens_is_length() {
        assert_eq!(
            run_fixture("max_tokens.sse"),
            oks(&[
                text("Once upon a time there"),
                text(" was a"),
                usage(7, 8, 0, 0),
                finish(FinishReason::Length)
            ])
        );
    }

    #[test]
    fn safety_without_content_is_a_content_filter() {
        assert_eq!(
            run_fixture("safety.sse"),
            oks(&[
                text("To do that you would"),
                usage(21, 5, 0, 0),
                finish(FinishReason::ContentFilter)
            ])
        );
    }

    #[test]
    fn a_body_ending_before_any_finish_reason_is_an_error() {
        let mut expected = oks(&[text("Partial"), text(" answer")]);
        expected.push(Err(ProviderError::Stream("stream ended early".into())));
        assert_eq!(run_fixture("ended_early.sse"), expected);
    }

    #[test]
    fn a_mid_stream_error_object_ends_the_stream() {
        let mut expected = oks(&[text("Once upon"), text(" a time")]);
        expected.push(Err(ProviderError::Stream(
            "The model is overloaded. Please try again later.".into(),
        )));
        assert_eq!(run_fixture("midstream_error.sse"), expected);
    }

    #[test]
    fn a_broken_connection_keeps_its_cause() {
        let pieces: Vec<Result<&'static [u8], String>> = vec![
            Ok(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"}}]}\r\n\r\n"),
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
    fn a_last_event_without_its_blank_line_still_counts() {
        let body = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}]}";
        assert_eq!(
            run_body(body, 5),
            oks(&[text("ok"), finish(FinishReason::Stop)])
        );
    }

    #[test]
    fn a_blocked_prompt_finishes_as_content_filter() {
        let body = b"data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9}}\r\n\r\n";
        assert_eq!(
            run_body(body, 7),
            oks(&[usage(9, 0, 0, 0), finish(FinishReason::ContentFilter)])
        );
    }

    #[test]
    fn unknown_fields_and_parts_are_ignored() {
        let mut mapper = ChunkMapper::default();
        let events = mapper
            .on_data(r#"{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"text":"x","newField":1}],"role":"model"},"avgLogprobs":-0.1,"citationMetadata":{}}],"createTime":"2025-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(events, vec![text("x")]);
    }

    #[test]
    fn a_function_call_id_from_the_server_is_kept() {
        let mut mapper = ChunkMapper::default();
        let events = mapper
            .on_data(r#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"fc-9","name":"ping"}}]}}]}"#)
            .unwrap();
        assert_eq!(
            events,
            vec![
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "fc-9".into(),
                    name: "ping".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{}".into()
                }
            ]
        );
    }

    #[test]
    fn malformed_json_is_a_stream_error_and_ends_the_mapping() {
        let mut mapper = ChunkMapper::default();
        let error = mapper.on_data("{\"candidates\": [").unwrap_err();
        assert!(matches!(error, ProviderError::Stream(m) if m.starts_with("malformed chunk")));
        assert_eq!(mapper.on_end(None), Ok(Vec::new()));
    }

    #[test]
    fn finish_reasons_map_to_ours() {
        for (theirs, tools, ours) in [
            ("STOP", false, FinishReason::Stop),
            ("STOP", true, FinishReason::ToolCalls),
            ("MAX_TOKENS", false, FinishReason::Length),
            ("SAFETY", false, FinishReason::ContentFilter),
            ("RECITATION", false, FinishReason::ContentFilter),
            ("BLOCKLIST", false, FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", false, FinishReason::ContentFilter),
            ("SPII", false, FinishReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", true, FinishReason::Error),
            ("LANGUAGE", false, FinishReason::Other),
            ("OTHER", false, FinishReason::Other),
        ] {
            assert_eq!(
                gemini_finish_reason_to_ours(theirs, tools),
                ours,
                "{theirs}"
            );
        }
    }

    #[test]
    fn the_request_body_uses_gemini_roles_and_system_instruction() {
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![
                ChatMessage {
                    role: "system".into(),
                    content: "be brief".into(),
                    parts: Vec::new(),
                    ..Default::default()
                },
                ChatMessage {
                    role: "user".into(),
                    content: "hi".into(),
                    parts: Vec::new(),
                    ..Default::default()
                },
                ChatMessage {
                    role: "assistant".into(),
                    content: "hello".into(),
                    parts: Vec::new(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(gemini_request(&request, true)).unwrap(),
            serde_json::json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "hello"}]},
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "generationConfig": {"thinkingConfig": {"includeThoughts": true}},
            })
        );
        let without = ChatRequest {
            model: request.model.clone(),
            messages: request.messages[1..].to_vec(),
            ..Default::default()
        };
        let body = serde_json::to_value(gemini_request(&without, false)).unwrap();
        assert!(body.get("systemInstruction").is_none(), "{body}");
        assert!(body.get("generationConfig").is_none(), "{body}");
    }

    fn message(role: &str, content: &str, parts: Vec<Part>) -> ChatMessage {
        ChatMessage {
            parts,
            ..ChatMessage::text(role, content)
        }
    }

    #[test]
    fn tools_calls_and_results_go_out_as_function_declarations_calls_and_responses() {
        let (tools, mut messages) = crate::providers::test_support::tool_step();
        // An id the adapter made up is not sent back.
        messages[1].tool_calls[0].id = "call_0".into();
        messages[2].tool_results[0].call_id = "call_0".into();
        // One the server gave is.
        messages[1].tool_calls[1].id = "fc_2".into();
        messages[2].tool_results[1].call_id = "fc_2".into();
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages,
            tools,
            ..Default::default()
        };
        let body = serde_json::to_value(gemini_request(&request, false)).unwrap();
        assert_eq!(
            body["tools"],
            serde_json::json!([{"functionDeclarations": [{
                "name": "web_search", "description": "Search the web",
                "parametersJsonSchema": {"type": "object", "properties": {"query": {"type": "string"}}},
            }]}])
        );
        assert_eq!(
            body["contents"],
            serde_json::json!([
                {"role": "user", "parts": [{"text": "find rust"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "web_search", "args": {"query": "rust"}},
                     "thoughtSignature": "sig-1"},
                    {"functionCall": {"id": "fc_2", "name": "read_site", "args": {"url": "https://x"}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "web_search",
                                          "response": {"content": "[{\"title\":\"Rust\"}]"}}},
                    {"functionResponse": {"id": "fc_2", "name": "read_site",
                                          "response": {"error": "unreachable"}}},
                ]},
            ])
        );
    }

    use crate::providers::test_support::{PDF_BASE64, PNG_BASE64, attachments};

    #[test]
    fn messages_without_parts_are_sent_exactly_as_before() {
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![
                message("system", "be brief", Vec::new()),
                message("user", "hi", Vec::new()),
                message("assistant", "", Vec::new()),
            ],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&gemini_request(&request, false)).unwrap(),
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":""}]}],"systemInstruction":{"parts":[{"text":"be brief"}]}}"#
        );
    }

    #[test]
    fn a_user_message_with_parts_sends_its_text_then_each_part_inline() {
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![message("user", "What is in these?", attachments())],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(gemini_request(&request, false)).unwrap(),
            json!({
                "contents": [{"role": "user", "parts": [
                    {"text": "What is in these?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG_BASE64}},
                    {"inlineData": {"mimeType": "application/pdf", "data": PDF_BASE64}},
                    {"text": "notes.txt:\nbuy milk"},
                ]}],
            })
        );
    }

    #[test]
    fn blank_text_is_left_out_and_other_roles_keep_their_text_alone() {
        let image = || {
            vec![Part::Image {
                media_type: "image/png".into(),
                data: Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
            }]
        };
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![
                message("system", "be brief", image()),
                message("user", "", image()),
                message("assistant", "a cat", image()),
            ],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(gemini_request(&request, false)).unwrap(),
            json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": PNG_BASE64}},
                    ]},
                    {"role": "model", "parts": [{"text": "a cat"}]},
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
            })
        );
    }

    #[tokio::test]
    async fn an_image_reaches_the_upstream_as_inline_data_through_the_real_http_path() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let config = GeminiConfig {
            name: "gemini".into(),
            base_url: format!("http://127.0.0.1:{}", mock.port()),
            api_key: "test".into(),
            include_thoughts: false,
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
        let recorded = mock.last_recorded(":streamGenerateContent").unwrap();
        assert_eq!(
            recorded.body["contents"],
            json!([{"role": "user", "parts": [
                {"text": "describe this"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
            ]}])
        );
        mock.stop().await;
    }

    #[test]
    fn model_names_are_safe_in_the_path() {
        assert_eq!(encode_path_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(
            encode_path_segment("mock:len=3,tps=2.5"),
            "mock:len=3,tps=2.5"
        );
        assert_eq!(encode_path_segment("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
    }

    #[test]
    fn the_api_key_is_redacted_in_debug() {
        let config = GeminiConfig {
            name: "gemini".into(),
            base_url: DEFAULT_BASE_URL.into(),
            api_key: "AIza-secret".into(),
            include_thoughts: true,
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("AIza-secret"), "{debug}");
        assert!(debug.contains("REDACTED"));
    }

    fn now() -> DateTime<Utc> {
        utc("2015-10-21T07:28:00Z")
    }

    const RESOURCE_EXHAUSTED_BODY: &str = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "34.4s"
      }
    ]
  }
}
"#;

    #[test]
    fn a_429_takes_its_delay_from_retry_info() {
        let error = handle_gemini_error(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            RESOURCE_EXHAUSTED_BODY,
            now(),
        );
        assert_eq!(
            error,
            ProviderError::Http {
                status: 429,
                message:
                    "You exceeded your current quota, please check your plan and billing details."
                        .into(),
                retry_after: Some(Duration::from_millis(34_400)),
            }
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn a_retry_after_header_wins_over_retry_info() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let error = handle_gemini_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            RESOURCE_EXHAUSTED_BODY,
            now(),
        );
        assert!(matches!(
            error,
            ProviderError::Http { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn a_400_invalid_argument_has_no_retry() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let error = handle_gemini_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), body, now());
        assert_eq!(
            error,
            ProviderError::Http {
                status: 400,
                message: "API key not valid. Please pass a valid API key.".into(),
                retry_after: None,
            }
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn array_wrapped_raw_and_empty_error_bodies() {
        let error = handle_gemini_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            r#"[{"error":{"code":503,"status":"UNAVAILABLE","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"}]}}]"#,
            now(),
        );
        assert_eq!(
            error,
            ProviderError::Http {
                status: 503,
                message: "UNAVAILABLE".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        let error = handle_gemini_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "<html>bad gateway</html>\n",
            now(),
        );
        assert!(
            matches!(error, ProviderError::Http { message, retry_after: None, .. } if message == "<html>bad gateway</html>")
        );
        let error = handle_gemini_error(StatusCode::NOT_FOUND, &HeaderMap::new(), "", now());
        assert!(matches!(error, ProviderError::Http { message, .. } if message == "Not Found"));
    }

    #[test]
    fn proto_durations_parse() {
        assert_eq!(
            parse_proto_duration("34.4s"),
            Some(Duration::from_millis(34_400))
        );
        assert_eq!(parse_proto_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_proto_duration("0.000500s"),
            Some(Duration::from_micros(500))
        );
        assert_eq!(parse_proto_duration("34"), None);
        assert_eq!(parse_proto_duration(".5s"), None);
        assert_eq!(parse_proto_duration("1.0000000001s"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("soon"), None);
    }
}
