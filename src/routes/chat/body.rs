//! The body of `POST /v1/chat`: what the AI SDK's `DefaultChatTransport` posts
//! (`{id, messages, trigger, messageId, ...body}`) or the short form (`{id, message, model}`),
//! parsed and checked into the service's [`SendMessage`].

use actix_web::HttpRequest;
use serde::Deserialize;
use serde_json::Value;
use threadline_domain::values::{MessageId, ThreadId, check_prose};

use crate::error::ApiError;
use crate::services::chat::{FileSource, ForcedTool, Intent, Offered, SendMessage, ToolRequest};

/// Largest chat body: the AI SDK sends the whole conversation each time, attached files as
/// `data:` URLs included.
pub const CHAT_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Most files one message may carry.
pub const MAX_FILES: usize = 5;
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

    /// The message's `file` parts (`{type: "file", mediaType, url, filename}`).
    fn files(&self) -> Result<Vec<FileSource>, ApiError> {
        let IncomingMessage::Ui { parts, .. } = self else {
            return Ok(Vec::new());
        };
        let files: Vec<&Value> = parts.iter().filter(|p| p["type"] == "file").collect();
        if files.len() > MAX_FILES {
            return Err(ApiError::invalid_field(
                "messages",
                format!("a message may carry at most {MAX_FILES} files"),
            ));
        }
        files.into_iter().map(file_source).collect()
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
    /// `search` (or `web_search`) or `research`: run that tool for this message before the
    /// model answers.
    pub tool: Option<String>,
    /// The tools a tool-capable model may call on its own: names, or `true` for every
    /// available one (`false` or absent: none).
    pub tools: Option<ToolsField>,
}

/// `tools`: a list of names or a boolean.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolsField {
    All(bool),
    Named(Vec<String>),
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
                let (client_id, text, files) = user_message(&self)?;
                Intent::Submit {
                    client_id,
                    text,
                    files,
                }
            }
        };
        let forced = ForcedTool::parse(self.tool.as_deref())?;
        let offered = match self.tools {
            None | Some(ToolsField::All(false)) => Offered::None,
            Some(ToolsField::All(true)) => Offered::All,
            Some(ToolsField::Named(names)) if names.is_empty() => Offered::None,
            Some(ToolsField::Named(names)) => Offered::Named(names),
        };
        Ok(SendMessage {
            thread_id,
            model: self.model,
            intent,
            tools: ToolRequest { forced, offered },
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
/// `messages`. Returns the client's id for it (if any), its text and its files.
fn user_message(body: &ChatBody) -> Result<(Option<MessageId>, String, Vec<FileSource>), ApiError> {
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
    let files = message.files()?;
    if text.trim().is_empty() && files.is_empty() {
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
    Ok((client_id, text, files))
}

/// Where a `file` part's bytes are: a `data:` URL, one of the caller's files
/// (`/v1/files/{id}/content`, relative or absolute), or a web address to fetch once.
pub(crate) fn file_source(part: &Value) -> Result<FileSource, ApiError> {
    let invalid = |why: &str| ApiError::invalid_field("messages", format!("a file part {why}"));
    let url = part["url"]
        .as_str()
        .ok_or_else(|| invalid("needs a `url`"))?;
    let filename = part["filename"].as_str().unwrap_or("file").to_owned();
    if let Some(data) = url.strip_prefix("data:") {
        let (meta, payload) = data
            .split_once(',')
            .ok_or_else(|| invalid("has a malformed data: URL"))?;
        let bytes = if meta.ends_with(";base64") {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(payload.trim())
                .map_err(|_| invalid("has a data: URL that is not valid base64"))?
        } else {
            percent_decode(payload)
        };
        return Ok(FileSource::Data { filename, bytes });
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    if let Some(id) = path
        .strip_prefix("/v1/files/")
        .map(|rest| rest.trim_end_matches("/content"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        return Ok(FileSource::Stored { id: id.to_owned() });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(FileSource::Web {
            url: url.to_owned(),
            filename,
        });
    }
    Err(invalid(
        "needs a data: URL, a /v1/files/{id}/content URL or an https URL",
    ))
}

/// `%XX` escapes decoded (a `data:` URL without `;base64`).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
