//! The body of `POST /v1/chat/completions` in OpenAI's Chat Completions shape, read into a
//! [`Completion`]: the model, the conversation as the provider adapters take it, the call's
//! options and the caller's tools. Fields this server does not act on (`n` above 1 aside) are
//! accepted and ignored, as OpenAI-compatible servers do.

use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::providers::{CallOptions, ChatMessage, ToolCall, ToolChoice, ToolResult, ToolSpec};
use crate::services::chat::FileSource;

/// Largest body: the whole conversation, images as `data:` URLs included.
pub const BODY_LIMIT: usize = crate::routes::chat::body::CHAT_BODY_LIMIT;
/// Most messages one request may carry.
const MAX_MESSAGES: usize = 10_000;
/// Most images one request may carry.
const MAX_IMAGES: usize = 16;
/// Most tools one request may define.
const MAX_TOOLS: usize = 128;

/// A checked Chat Completions request.
#[derive(Debug)]
pub struct Completion {
    pub model: String,
    /// The conversation; a user message's images are in `images` (by message index) until
    /// they are fetched and checked against the model.
    pub messages: Vec<ChatMessage>,
    pub images: Vec<(usize, FileSource)>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    pub options: CallOptions,
    pub tools: Vec<ToolSpec>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(field, message)
}

impl Completion {
    /// Parses the body (400 for JSON that does not parse, 422 naming the field for one that
    /// breaks the rules).
    pub fn parse(bytes: &[u8]) -> Result<Completion, ApiError> {
        let body: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
            code: ErrorCode::InvalidJson,
            detail: format!("the body is not valid JSON: {e}"),
        })?;
        if !body.is_object() {
            return Err(ApiError::BadRequest {
                code: ErrorCode::InvalidJson,
                detail: "the body must be a JSON object".into(),
            });
        }
        let model = match &body["model"] {
            Value::String(m) if !m.trim().is_empty() => m.clone(),
            Value::Null => return Err(invalid("model", "is required")),
            _ => return Err(invalid("model", "must be a model id")),
        };
        let stream = flag(&body, "stream")?;
        let include_usage = match &body["stream_options"] {
            Value::Null => false,
            Value::Object(o) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(invalid("stream_options.include_usage", "must be a boolean"));
                }
            },
            _ => return Err(invalid("stream_options", "must be an object")),
        };
        match &body["n"] {
            Value::Null => {}
            n if n.as_u64() == Some(1) => {}
            _ => return Err(invalid("n", "only one choice (n = 1) is supported")),
        }
        let options = CallOptions {
            temperature: number(&body, "temperature", 0.0, 2.0)?,
            max_tokens: count(&body, "max_tokens")?,
            max_completion_tokens: count(&body, "max_completion_tokens")?,
            tool_choice: tool_choice(&body["tool_choice"])?,
        };
        let tools = tools(&body["tools"])?;
        let (messages, images) = messages(&body["messages"])?;
        Ok(Completion {
            model,
            messages,
            images,
            stream,
            include_usage,
            options,
            tools,
        })
    }
}

fn flag(body: &Value, field: &str) -> Result<bool, ApiError> {
    match &body[field] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(invalid(field, "must be a boolean")),
    }
}

fn number(body: &Value, field: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match &body[field] {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(invalid(field, format!("must be between {min} and {max}"))),
        },
        _ => Err(invalid(field, "must be a number")),
    }
}

fn count(body: &Value, field: &str) -> Result<Option<u32>, ApiError> {
    match &body[field] {
        Value::Null => Ok(None),
        v => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid(field, "must be a positive integer")),
        },
    }
}

fn tool_choice(value: &Value) -> Result<Option<ToolChoice>, ApiError> {
    let field = "tool_choice";
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    field,
                    format!("unknown value {other:?}: use auto, none, required or a function"),
                ));
            }
        },
        Value::Object(_) => match value["function"]["name"].as_str() {
            Some(name) if value["type"] == "function" => ToolChoice::Function(name.to_owned()),
            _ => {
                return Err(invalid(
                    field,
                    r#"must be {"type": "function", "function": {"name": ...}}"#,
                ));
            }
        },
        _ => return Err(invalid(field, "must be a string or an object")),
    }))
}

fn tools(value: &Value) -> Result<Vec<ToolSpec>, ApiError> {
    let field = "tools";
    let list = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(list) => list,
        _ => return Err(invalid(field, "must be an array")),
    };
    if list.len() > MAX_TOOLS {
        return Err(invalid(field, format!("at most {MAX_TOOLS} tools")));
    }
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = &tool["function"];
            let name = function["name"].as_str().unwrap_or_default();
            let named = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if tool["type"] != "function" || !named {
                return Err(invalid(
                    &format!("tools[{i}]"),
                    "must be a function with a name of 1-64 letters, digits, _ or -",
                ));
            }
            let parameters = match &function["parameters"] {
                Value::Null => serde_json::json!({"type": "object", "properties": {}}),
                p @ Value::Object(_) => p.clone(),
                _ => {
                    return Err(invalid(
                        &format!("tools[{i}].function.parameters"),
                        "must be a JSON Schema object",
                    ));
                }
            };
            Ok(ToolSpec {
                name: name.to_owned(),
                description: function["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                parameters,
            })
        })
        .collect()
}

type Messages = (Vec<ChatMessage>, Vec<(usize, FileSource)>);

/// The conversation: `system` (and `developer`), `user` (text and image parts), `assistant`
/// (text and tool calls) and `tool` messages (consecutive ones become one message with a
/// result per call, as the adapters take them).
fn messages(value: &Value) -> Result<Messages, ApiError> {
    let field = "messages";
    let list = match value {
        Value::Array(list) if !list.is_empty() => list,
        Value::Null => return Err(invalid(field, "is required")),
        Value::Array(_) => return Err(invalid(field, "must hold at least one message")),
        _ => return Err(invalid(field, "must be an array of messages")),
    };
    if list.len() > MAX_MESSAGES {
        return Err(invalid(field, format!("at most {MAX_MESSAGES} messages")));
    }
    let mut out: Vec<ChatMessage> = Vec::with_capacity(list.len());
    let mut images = Vec::new();
    // Tool names by call id, for the results (Gemini matches them by name).
    let mut call_names: std::collections::HashMap<String, String> = Default::default();
    for (i, message) in list.iter().enumerate() {
        let at = |what: &str| format!("messages[{i}]{what}");
        let role = message["role"].as_str().unwrap_or_default();
        match role {
            "system" | "developer" => {
                let text = text_of(&message["content"]).ok_or_else(|| {
                    invalid(
                        &at(".content"),
                        "must be a string or an array of text parts",
                    )
                })?;
                out.push(ChatMessage::text("system", text));
            }
            "user" => {
                let (text, sources) = user_content(&message["content"], &at(".content"))?;
                for source in sources {
                    images.push((out.len(), source));
                }
                out.push(ChatMessage::text("user", text));
            }
            "assistant" => {
                let text = match &message["content"] {
                    Value::Null => String::new(),
                    content => text_of(content).ok_or_else(|| {
                        invalid(
                            &at(".content"),
                            "must be a string or an array of text parts",
                        )
                    })?,
                };
                let mut calls = Vec::new();
                if let Some(list) = message["tool_calls"].as_array() {
                    for (j, call) in list.iter().enumerate() {
                        let (Some(id), Some(name)) =
                            (call["id"].as_str(), call["function"]["name"].as_str())
                        else {
                            return Err(invalid(
                                &at(&format!(".tool_calls[{j}]")),
                                "needs an id and a function name",
                            ));
                        };
                        let arguments = call["function"]["arguments"]
                            .as_str()
                            .unwrap_or("{}")
                            .to_owned();
                        let input = serde_json::from_str::<Value>(&arguments)
                            .ok()
                            .filter(Value::is_object)
                            .unwrap_or_else(|| serde_json::json!({}));
                        call_names.insert(id.to_owned(), name.to_owned());
                        calls.push(ToolCall {
                            id: id.to_owned(),
                            name: name.to_owned(),
                            arguments,
                            input,
                            signature: None,
                        });
                    }
                }
                let mut assistant = ChatMessage::text("assistant", text);
                assistant.tool_calls = calls;
                out.push(assistant);
            }
            "tool" => {
                let Some(call_id) = message["tool_call_id"].as_str() else {
                    return Err(invalid(&at(".tool_call_id"), "is required"));
                };
                let content = text_of(&message["content"]).ok_or_else(|| {
                    invalid(
                        &at(".content"),
                        "must be a string or an array of text parts",
                    )
                })?;
                let result = ToolResult {
                    call_id: call_id.to_owned(),
                    name: call_names.get(call_id).cloned().unwrap_or_default(),
                    content,
                    is_error: false,
                };
                match out.last_mut() {
                    Some(last) if last.role == "tool" => last.tool_results.push(result),
                    _ => {
                        let mut tool = ChatMessage::text("tool", "");
                        tool.tool_results.push(result);
                        out.push(tool);
                    }
                }
            }
            "" => return Err(invalid(&at(".role"), "is required")),
            other => {
                return Err(invalid(
                    &at(".role"),
                    format!(
                        "unknown role {other:?}: use system, developer, user, assistant or tool"
                    ),
                ));
            }
        }
    }
    if images.len() > MAX_IMAGES {
        return Err(invalid(field, format!("at most {MAX_IMAGES} images")));
    }
    Ok((out, images))
}

/// A content that is a string or an array of text parts, as one text.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| (p["type"] == "text").then(|| p["text"].as_str()).flatten())
            .collect::<Option<Vec<&str>>>()
            .map(|texts| texts.join("\n")),
        _ => None,
    }
}

/// A user message's text and the sources of its images.
fn user_content(content: &Value, field: &str) -> Result<(String, Vec<FileSource>), ApiError> {
    let parts = match content {
        Value::String(s) => return Ok((s.clone(), Vec::new())),
        Value::Array(parts) => parts,
        _ => {
            return Err(invalid(
                field,
                "must be a string or an array of content parts",
            ));
        }
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part["type"].as_str() {
            Some("text") => match part["text"].as_str() {
                Some(text) => texts.push(text),
                None => return Err(invalid(&format!("{field}[{i}].text"), "must be a string")),
            },
            Some("image_url") => {
                let url = match &part["image_url"] {
                    Value::String(url) => url.as_str(),
                    object => object["url"].as_str().unwrap_or_default(),
                };
                let image = serde_json::json!({"url": url, "filename": "image"});
                images.push(crate::routes::chat::body::file_source(&image)?);
            }
            _ => {
                return Err(invalid(
                    &format!("{field}[{i}].type"),
                    "must be text or image_url",
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<Completion, ApiError> {
        Completion::parse(body.to_string().as_bytes())
    }

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::Validation(errors) => errors.keys().next().cloned().unwrap_or_default(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_conversation_with_tools_reads_as_the_adapters_take_it() {
        let c = parse(json!({
            "model": "gpt-4o",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 100,
            "temperature": 0.2,
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "in Paris?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Lyon\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"}
            ]
        }))
        .unwrap();
        assert!(c.stream && c.include_usage);
        assert_eq!(c.options.answer_limit(), Some(100));
        assert_eq!(
            c.options.tool_choice,
            Some(ToolChoice::Function("weather".into()))
        );
        assert_eq!(c.tools[0].name, "weather");
        let roles: Vec<&str> = c.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(c.messages[1].content, "Weather\nin Paris?");
        assert_eq!(c.messages[2].tool_calls[1].input, json!({"city": "Lyon"}));
        let results = &c.messages[3].tool_results;
        assert_eq!((results.len(), results[1].name.as_str()), (2, "weather"));
    }

    #[test]
    fn images_are_file_sources_of_their_message() {
        let c = parse(json!({"model": "m", "messages": [
            {"role": "system", "content": "x"},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}
        ]}))
        .unwrap();
        assert!(matches!(&c.images[..], [(1, FileSource::Data { .. })]));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                "model",
            ),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
                "stream",
            ),
            (
                json!({"model": "m", "temperature": 3, "messages": [{"role": "user", "content": "x"}]}),
                "temperature",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
                "n",
            ),
            (
                json!({"model": "m", "tool_choice": "always", "messages": [{"role": "user", "content": "x"}]}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "tools": [{"type": "function", "function": {"name": "a b"}}], "messages": [{"role": "user", "content": "x"}]}),
                "tools[0]",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                "messages",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(parse(body.clone()).unwrap_err()), field, "{body}");
        }
        assert!(matches!(
            Completion::parse(b"{not json"),
            Err(ApiError::BadRequest {
                code: ErrorCode::InvalidJson,
                ..
            })
        ));
    }
}
