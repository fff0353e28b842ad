//! Sending a message: the body the AI SDK's `DefaultChatTransport` posts (or the short form),
//! the message tree rules (new message, edit as sibling, regenerate as sibling reply), and the
//! start of the reply.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use threadline_domain::catalog::{Access, Tier};
use threadline_domain::thread::{NewUserMessage, Thread, ThreadCommand, ThreadError, ThreadEvent};
use threadline_domain::values::{AccountId, MessageId, ThreadId, check_prose};
use threadline_projections::messages::{self, MessageRow};
use threadline_projections::{catalog, threads};

use crate::auth::Caller;
use crate::chat::{Reservation, StartReply};
use crate::error::ApiError;
use crate::providers::ChatMessage;
use crate::services::credits;
use crate::state::AppState;
use crate::store::commands::CommandMeta;

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
        if bytes.len() > crate::routes::chat::send::CHAT_BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge {
                limit: crate::routes::chat::send::CHAT_BODY_LIMIT,
            });
        }
        let body: ChatBody = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ApiError::invalid_field("body", e.to_string())
            } else {
                ApiError::BadRequest {
                    code: "invalid_json",
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

/// Posts the message (or picks the reply to regenerate), starts the reply and returns its
/// generation id.
///
/// Sends on one thread take turns on this node (see [`crate::chat::ChatService::turns`]): the
/// thread is checked, credits reserved and the reply started while holding the thread's turn,
/// so a send that is refused never holds credits another request could have used, and never
/// leaves its message behind (the message and the reply start are one command).
pub async fn send(
    state: &AppState,
    caller: &Caller,
    body: ChatBody,
    request_id: &str,
    received: std::time::Instant,
) -> Result<String, ApiError> {
    let thread_id = ThreadId::parse(&body.id).map_err(|e| ApiError::invalid_field("id", e.0))?;
    let model_id = body
        .model
        .clone()
        .unwrap_or_else(|| state.chat.models.default_id().to_owned());
    let model = resolve_model(state, caller, &model_id).await?;
    // Check the message before anything is written: a refused request leaves nothing behind.
    if let Some(id) = &body.message_id {
        MessageId::parse(id).map_err(|e| ApiError::invalid_field("messageId", e.0))?;
    }
    let outgoing = match body.trigger()? {
        Trigger::Regenerate => None,
        Trigger::Submit => Some(user_message(&body)?),
    };
    let generation_id = uuid::Uuid::now_v7().to_string();
    let meta = CommandMeta::for_request(request_id, Some(caller.id().to_owned()));

    let turn = state.chat.turns.lock(thread_id.as_str().to_owned()).await;
    let (title, new_thread) = match find_thread(state, caller, &thread_id).await? {
        Found::Existing {
            active: Some(_), ..
        } => return Err(ThreadError::ReplyInProgress.into()),
        Found::Existing {
            title,
            active: None,
        } => (title, false),
        Found::New => (None, true),
    };
    // No waits for projections on the way to the first token: the context is built from the
    // messages read here plus what this request posts. The end of the stream waits instead.
    let all = messages::all_of(&state.db, thread_id.as_str()).await?;
    let turn_plan = match outgoing {
        None => {
            let (id, text) = regenerate_target(&all, body.message_id.as_deref())?;
            UserTurn {
                id,
                text,
                new: None,
            }
        }
        Some((client_id, text)) => plan_user_message(&all, client_id, text),
    };
    let estimate = estimated_prompt_cost(&model, &turn_plan.text);
    let reservation = credits::reserve_reply(
        state,
        caller,
        &generation_id,
        u64::from(model.credits),
        estimate,
        &meta,
    )
    .await?;
    let request = Outgoing {
        thread_id,
        model,
        turn: turn_plan,
        new_thread,
        first_exchange: all.is_empty() && title.is_none(),
        generation_id: generation_id.clone(),
        reservation: reservation.clone(),
        received,
    };
    let result = start_reply(state, caller, &all, request, &meta).await;
    drop(turn);
    match result {
        Ok(cursor) => {
            // Read-your-writes for what follows (a stop, a resume, the thread view). The reply
            // is already running: this wait overlaps the provider's time to first token.
            state.settle(cursor).await;
            Ok(generation_id)
        }
        Err(e) => {
            // Nothing was started: the credits go back.
            state
                .chat
                .close_reservation(&reservation, &generation_id, None, &meta)
                .await;
            Err(e)
        }
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

/// The user message a reply answers: its id and text, and the message to post when it is new.
struct UserTurn {
    id: String,
    text: String,
    new: Option<NewUserMessage>,
}

/// A checked request, ready to start.
struct Outgoing {
    thread_id: ThreadId,
    model: crate::chat::models::Model,
    turn: UserTurn,
    /// The thread does not exist yet: it is created just before the reply starts.
    new_thread: bool,
    /// The thread's title is generated after this reply.
    first_exchange: bool,
    generation_id: String,
    reservation: Reservation,
    received: std::time::Instant,
}

async fn start_reply(
    state: &AppState,
    caller: &Caller,
    all: &[MessageRow],
    request: Outgoing,
    meta: &CommandMeta,
) -> Result<Option<crate::store::log::Cursor>, ApiError> {
    let Outgoing {
        thread_id,
        model,
        turn,
        new_thread,
        first_exchange,
        generation_id,
        reservation,
        received,
    } = request;
    if new_thread {
        create_thread(state, caller, &thread_id, meta).await?;
    }
    let reply_id = new_message_id();
    let posted_under = turn.new.as_ref().map(|m| m.parent_id.clone());
    let cursor = state
        .send::<Thread>(
            thread_id.as_str(),
            ThreadCommand::StartReply {
                generation_id: generation_id.clone(),
                message_id: reply_id.clone(),
                parent_id: turn.id.clone(),
                model: model.id.clone(),
                user_message: turn.new,
                at: Utc::now(),
            },
            meta,
        )
        .await?;
    let mut context = context_for(all, &turn.id, &turn.text, posted_under);
    if let Some(system) = system_prompt(&crate::routes::me::preferences::current(state, caller)) {
        context.insert(
            0,
            ChatMessage {
                role: "system".into(),
                content: system,
            },
        );
    }
    state
        .chat
        .start(StartReply {
            generation_id,
            thread_id: thread_id.as_str().to_owned(),
            message_id: reply_id,
            parent_id: turn.id,
            model,
            context,
            needs_title: first_exchange,
            first_user_text: turn.text,
            meta: meta.clone(),
            received,
            reservation,
            payer: threadline_domain::generation::Payer {
                account_id: caller.id().to_owned(),
                tier: credits::tier_of(caller),
            },
        })
        .await?;
    Ok(cursor)
}

/// A lower bound of a reply's cost for the cost budget's reservation: the new message at the
/// model's input price (about four characters a token). The reply settles at its actual cost.
fn estimated_prompt_cost(model: &crate::chat::models::Model, text: &str) -> u64 {
    model.prices.cost_micros(
        (text.len() / 4) as u64,
        0,
        0,
        0,
        model.provider.usage_counting(),
    )
}

/// The system prompt from the user's preferences (none when they set nothing).
fn system_prompt(prefs: &threadline_domain::account::Preferences) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(nickname) = &prefs.nickname {
        parts.push(format!("The user's name is {nickname}."));
    }
    if let Some(bio) = &prefs.biography {
        parts.push(format!("About the user: {bio}"));
    }
    if let Some(instructions) = &prefs.custom_instructions {
        parts.push(instructions.clone());
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

pub use crate::services::credits::tier_of;

/// The model a request names, with the catalog's access rule enforced on the server.
pub async fn resolve_model(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<crate::chat::models::Model, ApiError> {
    let unknown = || ApiError::invalid_field("model", format!("unknown model {id:?}"));
    let Some(spec) = catalog::get(&state.db, id).await? else {
        return match state.settings.allow_direct_models {
            true => state.chat.models.direct(id).ok_or_else(unknown),
            false => Err(unknown()),
        };
    };
    if !spec.enabled {
        return Err(ApiError::invalid_field(
            "model",
            format!("model {id:?} is disabled"),
        ));
    }
    let tier = tier_of(caller);
    if !spec.access.allows(tier) {
        // Signing in is not a purchase: a 403. A plan gate is a 402 (SPEC §7).
        return Err(match (spec.access, tier) {
            (Access::PremiumRequired, Tier::Free) => ApiError::PremiumRequired {
                detail: format!("this model needs a subscription ({id})"),
                tier: tier.as_str(),
            },
            (Access::PremiumRequired, _) => ApiError::Forbidden {
                code: "premium_required",
                detail: format!("this model needs a signed-in account with a subscription ({id})"),
            },
            _ => ApiError::Forbidden {
                code: "account_required",
                detail: format!("this model needs a signed-in account ({id})"),
            },
        });
    }
    state.chat.models.from_catalog(id, &spec).ok_or_else(|| {
        ApiError::invalid_field(
            "model",
            format!("model {id:?} is not available: its provider is not configured"),
        )
    })
}

/// The caller's thread as a send finds it.
enum Found {
    Existing {
        title: Option<String>,
        /// The generation streaming in it now.
        active: Option<String>,
    },
    /// No thread has this id yet: the send creates it.
    New,
}

/// The caller's thread `id`. Another account's thread, or a deleted one, is a 404: it is
/// indistinguishable from missing.
async fn find_thread(state: &AppState, caller: &Caller, id: &ThreadId) -> Result<Found, ApiError> {
    if let Some(thread) = threads::get(&state.db, caller.id(), id.as_str()).await? {
        let active = crate::routes::chat::active_generation(state, &thread).await?;
        return Ok(Found::Existing {
            title: thread.title,
            active,
        });
    }
    // Not in the projections: new, or created a moment ago by a send that took its turn
    // before this one (the thread's own stream in the log tells).
    use crate::store::log::latest_payload;
    let created = latest_payload(&state.db, "Thread", id.as_str(), "ThreadCreated").await?;
    let Some(created) = created else {
        return Ok(Found::New);
    };
    let deleted = latest_payload(&state.db, "Thread", id.as_str(), "ThreadDeleted")
        .await?
        .is_some();
    match serde_json::from_value(created) {
        Ok(ThreadEvent::ThreadCreated { owner, title, .. })
            if !deleted && owner.to_string() == caller.id() =>
        {
            let active = crate::routes::chat::active_generation_in_log(state, id.as_str()).await?;
            Ok(Found::Existing {
                title: title.map(|t| t.as_str().to_owned()),
                active,
            })
        }
        _ => Err(ApiError::NotFound("thread")),
    }
}

/// Creates the caller's new thread `id`. When another node created it first, the send goes
/// on if it is the caller's and idle.
async fn create_thread(
    state: &AppState,
    caller: &Caller,
    id: &ThreadId,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let created = state
        .send::<Thread>(
            id.as_str(),
            ThreadCommand::Create {
                owner,
                title: None,
                at: Utc::now(),
            },
            meta,
        )
        .await;
    match created {
        Err(ApiError::Conflict {
            code: "thread_exists",
            ..
        }) => match find_thread(state, caller, id).await? {
            Found::Existing { active: None, .. } => Ok(()),
            Found::Existing {
                active: Some(_), ..
            } => Err(ThreadError::ReplyInProgress.into()),
            Found::New => Err(ApiError::NotFound("thread")),
        },
        other => other.map(drop),
    }
}

/// The request's user message: `message` in the short form, else the last user message of
/// `messages`. Returns the client's id for it (if any) and its text.
fn user_message(body: &ChatBody) -> Result<(Option<String>, String), ApiError> {
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
        .map_err(|e| ApiError::invalid_field("messages", e.0))?
        .map(|id| id.as_str().to_owned());
    Ok((client_id, text))
}

/// Plans the user message. A known id with the same text is reused (a resend); with another
/// text it is an edit, posted as a new sibling under the same parent; otherwise the message is
/// new, under the end of the current path.
fn plan_user_message(all: &[MessageRow], client_id: Option<String>, text: String) -> UserTurn {
    let existing = client_id
        .as_deref()
        .and_then(|id| all.iter().find(|m| m.id == id));
    let (id, parent_id) = match existing {
        Some(m) if m.role == "user" && m.text == text => {
            return UserTurn {
                id: m.id.clone(),
                text,
                new: None,
            };
        }
        Some(m) => (new_message_id(), m.parent_id.clone()),
        None => (
            client_id.unwrap_or_else(new_message_id),
            messages::current_path(all)
                .last()
                .map(|p| p.message.id.clone()),
        ),
    };
    UserTurn {
        id,
        text: text.clone(),
        new: Some(NewUserMessage { parent_id, text }),
    }
}

fn new_message_id() -> String {
    format!("msg-{}", uuid::Uuid::now_v7().simple())
}

/// The user message whose reply is regenerated: the parent of `message_id` (or of the newest
/// assistant message).
fn regenerate_target(
    all: &[MessageRow],
    message_id: Option<&str>,
) -> Result<(String, String), ApiError> {
    let assistant = match message_id {
        Some(id) => all.iter().find(|m| m.id == id),
        None => all.iter().rev().find(|m| m.role == "assistant"),
    }
    .ok_or(ApiError::NotFound("message"))?;
    let parent = match assistant.role.as_str() {
        "user" => assistant,
        _ => assistant
            .parent_id
            .as_deref()
            .and_then(|p| all.iter().find(|m| m.id == p))
            .ok_or(ApiError::NotFound("message"))?,
    };
    Ok((parent.id.clone(), parent.text.clone()))
}

/// The conversation sent to the model: the path from the root to the user message, rebuilt
/// from the log (client-supplied history is never trusted). `posted_under` is the parent of a
/// user message this request just posted (not in `all` yet).
fn context_for(
    all: &[MessageRow],
    user_id: &str,
    user_text: &str,
    posted_under: Option<Option<String>>,
) -> Vec<ChatMessage> {
    let leaf = match &posted_under {
        Some(parent) => parent.as_deref(),
        None => Some(user_id),
    };
    let path = if leaf.is_some() {
        messages::current_path_to(all, leaf)
    } else {
        Vec::new()
    };
    let mut context: Vec<ChatMessage> = path
        .iter()
        .filter(|p| !(p.message.role == "assistant" && p.message.text.is_empty()))
        .map(|p| ChatMessage {
            role: p.message.role.clone(),
            content: p.message.text.clone(),
        })
        .collect();
    if context.last().is_none_or(|m| m.role != "user") {
        context.push(ChatMessage {
            role: "user".into(),
            content: user_text.to_owned(),
        });
    }
    context
}

/// A message of a thread's current path as the API returns it: the AI SDK's `UIMessage` shape
/// (`id`, `role`, `parts`) plus `metadata` with the tree and reply details.
pub fn ui_message(
    p: &messages::PathMessage,
    generation: Option<&messages::GenerationRow>,
) -> Value {
    let m = &p.message;
    let mut parts = Vec::new();
    if m.role == "assistant" {
        parts.push(serde_json::json!({"type": "step-start"}));
        if !m.reasoning.is_empty() {
            parts.push(
                serde_json::json!({"type": "reasoning", "text": m.reasoning, "state": "done"}),
            );
        }
        if !m.text.is_empty() {
            parts.push(serde_json::json!({"type": "text", "text": m.text, "state": "done"}));
        }
    } else {
        parts.push(serde_json::json!({"type": "text", "text": m.text}));
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("parent_id", serde_json::json!(m.parent_id));
    metadata.insert("sibling_ids", serde_json::json!(p.sibling_ids));
    metadata.insert(
        "created_at",
        serde_json::json!(threadline_projections::rfc3339(m.created_at)),
    );
    metadata.insert("status", serde_json::json!(m.status));
    if m.role == "assistant" {
        metadata.insert("model", serde_json::json!(m.model));
        metadata.insert("generation_id", serde_json::json!(m.generation_id));
        if let Some(g) = generation {
            metadata.insert("finish_reason", serde_json::json!(g.finish_reason));
            metadata.insert("error", serde_json::json!(g.error));
            if let (Some(input), Some(output), Some(reasoning), Some(cached)) = (
                g.input_tokens,
                g.output_tokens,
                g.reasoning_tokens,
                g.cached_input_tokens,
            ) {
                metadata.insert(
                    "usage",
                    serde_json::json!({
                        "input_tokens": input,
                        "output_tokens": output,
                        "reasoning_tokens": reasoning,
                        "cached_input_tokens": cached,
                    }),
                );
                metadata.insert("cost_micros", serde_json::json!(g.cost_micros));
            }
        }
    }
    serde_json::json!({"id": m.id, "role": m.role, "parts": parts, "metadata": metadata})
}
