//! The body of `POST /v1/chat`: what the AI SDK's `DefaultChatTransport` posts
//! (`{id, messages, trigger, messageId, ...body}`) or the short form (`{id, message, model}`),
//! parsed and checked into the service's [`SendMessage`].

use actix_web::HttpRequest;
use serde::Deserialize;
use serde_json::Value;
use threadline_domain::values::{MessageId, ThreadId, check_prose};

use crate::error::ApiError;
use crate::services::chat::{Intent, SendMessage};

/// Largest chat body: the AI SDK sends the whole conversation each time.
pub const CHAT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest user message in characters.
const MAX_MESSAGE_CHARS: usize = 100_000;
/// Most messages a request may carry (the client sends the whole conversation).
const MAX_MESSAGES: usize = 10_000;

/// A message as the AI SDK sends it (`UIMessage`), or plain text in the short form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IncomingMessage {
    Text(String),
    Ui {
        id: Option<String>,
        role: String,
        #[serde(default)]
        parts: Vec<Value>,
        /// Older clients send `content` instead of parts.
        content: Option<String>,
    },
}

impl IncomingMessage {
    fn role(&self) -> &str {
        match self {
            IncomingMessage::Text(_) => "user",
            IncomingMessage::Ui { role, .. } => role,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            IncomingMessage::Text(_) => None,
            IncomingMessage::Ui { id, .. } => id.as_deref().filter(|i| !i.is_empty()),
        }
    }

    fn text(&self) -> String {
        match self {
            IncomingMessage::Text(t) => t.clone(),
            IncomingMessage::Ui { parts, content, .. } => {
                let text: String = parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("");
                if text.is_empty() {
                    content.clone().unwrap_or_default()
                } else {
                    text
                }
            }
        }
    }
}

/// The body of `POST /v1/chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatBody {
    /// The thread id; a new id creates the thread.
    pub id: String,
    /// The conversation as the client has it (only the last user message is used).
    #[serde(default)]
    pub messages: Vec<IncomingMessage>,
    /// Short form: the one message to send.
    pub message: Option<IncomingMessage>,
    /// `submit-message` (default) or `regenerate-message`.
    pub trigger: Option<String>,
    /// With `regenerate-message`: the assistant message to regenerate.
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// The model id (default: the server's default model).
    pub model: Option<String>,
}

impl ChatBody {
    /// What the request asks for; an unknown trigger is a 422 (never a plain send).
    pub fn trigger(&self) -> Result<Trigger, ApiError> {
        match self.trigger.as_deref() {
            None | Some("submit-message") => Ok(Trigger::Submit),
            Some("regenerate-message") => Ok(Trigger::Regenerate),
            Some(other) => Err(ApiError::invalid_field(
                "trigger",
                format!("unknown trigger {other:?}: use submit-message or regenerate-message"),
            )),
        }
    }

    /// Parses and checks a raw body (the route accepts larger bodies than the JSON default).
    pub fn parse(req: &HttpRequest, bytes: &[u8]) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if !json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        if bytes.len() > CHAT_BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge {
                limit: CHAT_BODY_LIMIT,
            });
        }
        let body: ChatBody = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ApiError::invalid_field("body", e.to_string())
            } else {
                ApiError::BadRequest {
                    code: crate::error::ErrorCode::InvalidJson,
                    detail: format!("the body is not valid JSON: {e}"),
                }
            }
        })?;
        if body.messages.len() > MAX_MESSAGES {
            return Err(ApiError::invalid_field(
                "messages",
                format!("at most {MAX_MESSAGES} messages"),
            ));
        }
        Ok(body)
    }
}

impl ChatBody {
    /// The checked request: a thread id, a model, and what to send.
    pub fn into_request(self) -> Result<SendMessage, ApiError> {
        let thread_id =
            ThreadId::parse(&self.id).map_err(|e| ApiError::invalid_field("id", e.0))?;
        let message_id = self
            .message_id
            .as_deref()
            .map(MessageId::parse)
            .transpose()
            .map_err(|e| ApiError::invalid_field("messageId", e.0))?;
        let intent = match self.trigger()? {
            Trigger::Regenerate => Intent::Regenerate { message_id },
            Trigger::Submit => {
                let (client_id, text) = user_message(&self)?;
                Intent::Submit { client_id, text }
            }
        };
        Ok(SendMessage {
            thread_id,
            model: self.model,
            intent,
        })
    }
}

/// What `trigger` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `submit-message` (or no trigger): send the last user message.
    Submit,
    /// `regenerate-message`: a new reply to the user message of `messageId`.
    Regenerate,
}

/// The request's user message: `message` in the short form, else the last user message of
/// `messages`. Returns the client's id for it (if any) and its text.
fn user_message(body: &ChatBody) -> Result<(Option<MessageId>, String), ApiError> {
    let message = body
        .message
        .as_ref()
        .or_else(|| body.messages.iter().rev().find(|m| m.role() == "user"))
        .ok_or_else(|| ApiError::invalid_field("messages", "no user message to send"))?;
    if message.role() != "user" {
        return Err(ApiError::invalid_field(
            "message",
            "only user messages can be sent",
        ));
    }
    let text = message.text();
    if text.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "the message has no text",
        ));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::invalid_field(
            "messages",
            format!("a message may have at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    check_prose(&text).map_err(|e| ApiError::invalid_field("messages", format!("the text {e}")))?;
    let client_id = message
        .id()
        .map(MessageId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("messages", e.0))?;
    Ok((client_id, text))
}
