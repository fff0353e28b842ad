//! Model providers: each module maps one provider's streaming wire format into the one internal
//! type [`ProviderEvent`]. Dispatch is a closed enum ([`Provider`]), not trait objects.
//!
//! # Layout
//! - this file: the internal chunk type, request type, errors, and [`Provider`] dispatch.
//! - [`echo`]: the built-in development model (no network).
//! - [`openai`]: OpenAI-compatible Chat Completions (OpenAI, OpenRouter, DeepSeek, xAI, Groq,
//!   Ollama, vLLM, …).
//! - [`anthropic`]: Anthropic Messages.
//! - [`gemini`]: Google Gemini `streamGenerateContent`.
//! - [`sse`]: a small incremental Server-Sent Events decoder shared by adapters.
//! - [`registry`]: which providers have credentials, and how a catalog entry becomes a
//!   callable [`registry::Model`].

pub mod anthropic;
pub mod echo;
pub mod gemini;
pub mod openai;
pub mod registry;
pub mod sse;
#[cfg(test)]
pub(crate) mod test_support;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};

/// One piece of a streamed reply, whatever the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderEvent {
    /// Visible answer text.
    TextDelta { text: String },
    /// Reasoning / thinking text.
    ReasoningDelta { text: String },
    /// A tool call begins (`index` identifies it within the reply).
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// More of a tool call's JSON arguments.
    ToolCallDelta { index: u32, arguments: String },
    /// An opaque signature the provider wants back with the call in the next step (Gemini's
    /// `thoughtSignature` on a `functionCall` part).
    ToolCallSignature { index: u32, signature: String },
    /// The signature of the reasoning so far (Anthropic's `signature_delta`): a step that
    /// called tools sends its thinking back with it.
    ReasoningSignature { signature: String },
    /// Token usage as reported by the provider (totals for the reply so far).
    Usage { usage: Usage },
    /// The provider finished the reply.
    Finish { reason: FinishReason },
}

/// Token counts of one reply, exactly as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_input_tokens: u64,
}

/// Why a reply ended, in the AI SDK's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Error,
    Other,
}

impl FinishReason {
    /// The AI SDK `finishReason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content-filter",
            FinishReason::ToolCalls => "tool-calls",
            FinishReason::Error => "error",
            FinishReason::Other => "other",
        }
    }
}

/// A message of the context sent to a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, or `tool` (the results of one step's tool calls).
    pub role: String,
    pub content: String,
    /// What the message carries besides its text (attachments), already chosen for the model:
    /// each adapter renders them in its wire format after `content`. Never serialized (the
    /// bytes stay out of logs and events).
    #[serde(skip)]
    pub parts: Vec<Part>,
    /// The tool calls an `assistant` message made (after its text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The results a `tool` message carries, one per call of the step before, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<ToolResult>,
    /// The signed reasoning of an `assistant` step that called tools (Anthropic requires it
    /// back, before the tool calls, while extended thinking is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

/// Reasoning as the provider signed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thinking {
    pub text: String,
    pub signature: String,
}

impl ChatMessage {
    /// A message of plain text.
    pub fn text(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: content.into(),
            ..ChatMessage::default()
        }
    }
}

/// A tool the model may call: its name, what it does, and its input as a JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema of an object.
    pub parameters: serde_json::Value,
}

/// A tool call a model made, as it goes back to the model in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (OpenAI sends this text back).
    pub arguments: String,
    /// The arguments as a JSON object (Anthropic and Gemini send an object; `{}` when the
    /// model's text was not an object).
    pub input: serde_json::Value,
    /// What the provider asked to get back with the call (Gemini's `thoughtSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What one tool call returned, as the model receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub call_id: String,
    /// The tool's name (Gemini matches results to calls by name).
    pub name: String,
    /// The result as text (JSON text for structured results).
    pub content: String,
    /// Whether the call failed (`content` is then the error).
    #[serde(default)]
    pub is_error: bool,
}

/// An attachment as a model receives it, decided by the model's capabilities before the
/// adapter sees it (see `services::chat::parts`).
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text that stands for a file (a text file's content, a PDF's extracted text), already
    /// framed with its name.
    Text(String),
    /// An image for a vision model: OpenAI `image_url` (a `data:` URL), Anthropic an `image`
    /// block (base64 source), Gemini `inlineData`.
    Image {
        media_type: String,
        data: bytes::Bytes,
    },
    /// A document (a PDF) for a model that reads them natively: OpenAI a `file` part
    /// (`file_data` as a `data:` URL, with its `filename`), Anthropic a `document` block (base64
    /// source), Gemini `inlineData`.
    Document {
        media_type: String,
        filename: String,
        data: bytes::Bytes,
    },
}

/// What is sent to a provider for one reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The provider's own model name.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call (none: the request carries no tool definitions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// What the caller set of the call itself (nothing for a chat reply).
    #[serde(default, skip_serializing_if = "CallOptions::is_unset")]
    pub options: CallOptions,
}

/// How a caller of the OpenAI-compatible API tunes one model call; each adapter writes the
/// ones that are set in its wire format and leaves the provider's defaults for the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The longest answer in tokens, as `max_tokens` (OpenAI-compatible upstreams get the field
    /// the caller used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The same, as `max_completion_tokens` (OpenAI's newer name, required by its reasoning
    /// models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Whether (and which of) the tools the model must call; `None` leaves it to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

impl CallOptions {
    pub fn is_unset(&self) -> bool {
        *self == CallOptions::default()
    }

    /// The answer's length limit, whichever name it came under.
    pub fn answer_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// Whether the model must call a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    /// No tool call, though tools are defined.
    None,
    /// Some tool call.
    Required,
    /// A call of this tool.
    Function(String),
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an HTTP error status before streaming.
    #[error("provider returned HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// From `retry-after-ms`, `retry-after` (seconds or HTTP date) or the body.
        retry_after: Option<Duration>,
    },
    /// The stream carried an error object, or broke mid-way.
    #[error("provider stream error: {0}")]
    Stream(String),
    /// Could not connect or send the request.
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// No data within the allowed time.
    #[error("provider timed out: {0}")]
    Timeout(String),
}

impl ProviderError {
    /// Whether retrying the same request later may succeed (429, 5xx, connection failures).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => *status == 429 || *status >= 500,
            ProviderError::Connect(_) | ProviderError::Timeout(_) => true,
            ProviderError::Stream(_) => false,
        }
    }
}

/// Thinking budget for Anthropic models with the reasoning capability.
pub const REASONING_BUDGET_TOKENS: u32 = 4096;

/// A stream of provider events.
pub type ProviderStream = Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>;

/// A configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// The built-in development model.
    Echo(echo::EchoConfig),
    /// An OpenAI-compatible Chat Completions endpoint.
    OpenAi(openai::OpenAiConfig),
    /// Anthropic Messages.
    Anthropic(anthropic::AnthropicConfig),
    /// Google Gemini.
    Gemini(gemini::GeminiConfig),
}

impl Provider {
    /// This provider configured for a model with (or without) reasoning: reasoning parameters
    /// are sent only to models that have the capability (OpenAI `reasoning_effort`, Anthropic
    /// thinking budget, Gemini `includeThoughts`).
    pub fn for_reasoning(&self, reasoning: bool) -> Provider {
        match self {
            Provider::Anthropic(config) => Provider::Anthropic(anthropic::AnthropicConfig {
                thinking_budget: reasoning.then_some(REASONING_BUDGET_TOKENS),
                ..config.clone()
            }),
            Provider::Gemini(config) => Provider::Gemini(gemini::GeminiConfig {
                include_thoughts: reasoning,
                ..config.clone()
            }),
            // OpenAI's own reasoning models take an effort; compatible servers (DeepSeek,
            // OpenRouter, …) stream reasoning on their own and may reject the parameter.
            Provider::OpenAi(config) if config.name == "openai" => {
                Provider::OpenAi(openai::OpenAiConfig {
                    reasoning_effort: reasoning.then(|| "medium".to_owned()),
                    ..config.clone()
                })
            }
            other => other.clone(),
        }
    }

    /// Starts streaming a reply. Errors before the first byte of the stream (HTTP status,
    /// connection) are returned here; later ones arrive in the stream.
    pub async fn stream(
        &self,
        http: &reqwest::Client,
        request: &ChatRequest,
    ) -> Result<ProviderStream, ProviderError> {
        match self {
            Provider::Echo(config) => Ok(echo::stream(config, request)),
            Provider::OpenAi(config) => openai::stream(http, config, request).await,
            Provider::Anthropic(config) => anthropic::stream(http, config, request).await,
            Provider::Gemini(config) => gemini::stream(http, config, request).await,
        }
    }

    /// How this provider's usage counts overlap (for counting each token once).
    pub fn usage_counting(&self) -> threadline_domain::catalog::UsageCounting {
        registry::usage_counting_of(self.name())
    }

    /// The provider's name as recorded in events (`echo`, `openai`, `openrouter`, …).
    pub fn name(&self) -> &str {
        match self {
            Provider::Echo(_) => "echo",
            Provider::OpenAi(config) => &config.name,
            Provider::Anthropic(config) => &config.name,
            Provider::Gemini(config) => &config.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(name: &str) -> Provider {
        Provider::OpenAi(openai::OpenAiConfig {
            name: name.into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: "k".into(),
            reasoning_effort: None,
        })
    }

    #[test]
    fn reasoning_parameters_go_only_to_reasoning_models_of_each_provider() {
        let Provider::OpenAi(c) = openai("openai").for_reasoning(true) else {
            panic!()
        };
        assert_eq!(c.reasoning_effort.as_deref(), Some("medium"));
        let Provider::OpenAi(c) = openai("openai").for_reasoning(false) else {
            panic!()
        };
        assert_eq!(c.reasoning_effort, None);
        let Provider::OpenAi(c) = openai("deepseek").for_reasoning(true) else {
            panic!()
        };
        assert_eq!(
            c.reasoning_effort, None,
            "compatible servers get no OpenAI-only parameter"
        );

        let anthropic = Provider::Anthropic(anthropic::AnthropicConfig::new("k"));
        let Provider::Anthropic(c) = anthropic.for_reasoning(true) else {
            panic!()
        };
        assert_eq!(c.thinking_budget, Some(REASONING_BUDGET_TOKENS));
        let Provider::Anthropic(c) = anthropic.for_reasoning(false) else {
            panic!()
        };
        assert_eq!(c.thinking_budget, None);

        let gemini = Provider::Gemini(gemini::GeminiConfig {
            name: "gemini".into(),
            base_url: gemini::DEFAULT_BASE_URL.into(),
            api_key: "k".into(),
            include_thoughts: false,
        });
        let Provider::Gemini(c) = gemini.for_reasoning(true) else {
            panic!()
        };
        assert!(c.include_thoughts);
        let Provider::Gemini(c) = gemini.for_reasoning(false) else {
            panic!()
        };
        assert!(!c.include_thoughts);
    }
}
