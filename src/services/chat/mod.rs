//! Sending a message: the thread's turn, the credits, the message tree and the start of the
//! reply.
//!
//! # Layout
//! - [`send`] (here): the use case, from a checked [`SendMessage`] to a running reply.
//! - [`access`]: the model a request names, with its access rule.
//! - [`tree`]: the message tree rules and the context sent to the model (pure functions).

pub mod access;
pub mod api;
pub mod parts;
pub mod tree;

use actix_web::web;
use chrono::Utc;
use threadline_domain::thread::{Thread, ThreadCommand, ThreadError, ThreadEvent};
use threadline_domain::values::{AccountId, MessageId, ThreadId};
use threadline_projections::messages::{self, MessageRow};
use threadline_projections::threads;

use crate::auth::Caller;
use crate::chat::{Reservation, StartReply};
use crate::error::ApiError;
use crate::providers::ChatMessage;
use crate::services::credits;
use crate::state::AppState;
use crate::store::bus::CommandMeta;
use access::resolve_model;
use tree::{UserTurn, context_with_files, new_message_id, plan_user_message, regenerate_target};

/// The model a send that names none uses: the caller's `default_model` preference when it is
/// usable now (a model since disabled, or one the caller's plan no longer opens, falls back),
/// else the server's default. `POST /v1/chat/check` asks the same question.
pub async fn default_model(
    state: &AppState,
    caller: &Caller,
) -> Result<crate::providers::registry::Model, ApiError> {
    let preferred = crate::services::accounts::preferences_of(state, caller).default_model;
    if let Some(id) = preferred
        && let Ok(model) = resolve_model(state, caller, &id).await
    {
        return Ok(model);
    }
    resolve_model(state, caller, state.chat.registry.default_id()).await
}

/// A checked send: the thread, the model (the server's default when `None`), what to do and
/// which tools the reply uses.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub thread_id: ThreadId,
    pub model: Option<String>,
    pub intent: Intent,
    pub tools: ToolRequest,
}

/// The tools a send asks for.
#[derive(Debug, Clone, Default)]
pub struct ToolRequest {
    /// A tool run for this message before the model answers.
    pub forced: Option<ForcedTool>,
    /// The tools a tool-capable model may call on its own.
    pub offered: Offered,
}

pub use crate::chat::ForcedTool;

/// Which tools a tool-capable model is offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Offered {
    #[default]
    None,
    /// Every tool the server can run.
    All,
    /// These (each must exist and be available).
    Named(Vec<String>),
}

/// Where an attached file's bytes come from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// Bytes sent inline (a `data:` URL): stored as a new file of the caller.
    Data { filename: String, bytes: Vec<u8> },
    /// One of the caller's files.
    Stored { id: String },
    /// A web address, fetched once through the guarded fetcher and stored.
    Web { url: String, filename: String },
}

/// What a send asks for.
#[derive(Debug, Clone)]
pub enum Intent {
    /// Send a user message (with the client's id for it, if any) and the files it carries.
    Submit {
        client_id: Option<MessageId>,
        text: String,
        files: Vec<FileSource>,
    },
    /// A new reply to the user message of `message_id` (of the newest assistant message when
    /// `None`).
    Regenerate { message_id: Option<MessageId> },
}

/// Posts the message (or picks the reply to regenerate), starts the reply and returns its
/// generation id.
///
/// Sends on one thread take turns on this node (see [`crate::chat::ChatService::turns`]): the
/// thread is checked, credits reserved and the reply started while holding the thread's turn,
/// so a send that is refused never holds credits another request could have used, and never
/// leaves its message behind (the message and the reply start are one command).
pub async fn send(
    state: &web::Data<AppState>,
    caller: &Caller,
    request: SendMessage,
    request_id: &str,
    received: std::time::Instant,
) -> Result<String, ApiError> {
    let SendMessage {
        thread_id,
        model,
        intent,
        tools,
    } = request;
    let model = match model {
        Some(id) => resolve_model(state, caller, &id).await?,
        None => default_model(state, caller).await?,
    };
    let generation_id = uuid::Uuid::now_v7().to_string();
    let meta = CommandMeta::for_request(request_id, Some(caller.id().to_owned()));
    let tools = choose_tools(state, &model, tools).await?;
    // Files are read (or fetched) and checked against the model before anything is spent.
    let (intent, files) = match intent {
        Intent::Submit {
            client_id,
            text,
            files,
        } if !files.is_empty() => {
            let prepared = crate::services::files::prepare(state, caller, files).await?;
            parts::check(&model, &prepared)?;
            let intent = Intent::Submit {
                client_id,
                text,
                files: Vec::new(),
            };
            (intent, prepared)
        }
        other => (other, Vec::new()),
    };

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
    // A thread that is not in the log yet has no messages: nothing to read.
    let tree = if new_thread {
        messages::Tree::default()
    } else {
        messages::tree_of(&state.db, thread_id.as_str()).await?
    };
    let all = &tree.messages;
    let turn_plan = match intent {
        Intent::Regenerate { message_id } => {
            let (id, text) = regenerate_target(all, message_id.as_ref().map(MessageId::as_str))?;
            UserTurn {
                id,
                text,
                new: None,
            }
        }
        Intent::Submit {
            client_id, text, ..
        } => {
            let mut plan =
                plan_user_message(&tree, client_id.map(|id| id.as_str().to_owned()), text);
            if let Some(new) = &mut plan.new
                && !files.is_empty()
            {
                new.attachments =
                    crate::services::files::store_prepared(state, caller, files, &meta).await?;
            }
            plan
        }
    };
    let estimate = estimated_prompt_cost(&model, &turn_plan.text);
    // A chosen tool's credit first (its 402/429 before anything else is spent), then the reply's.
    let forced = match tools.as_ref().and_then(|(_, forced)| *forced) {
        None => None,
        Some(kind) => {
            let run_id = format!("{generation_id}:{}", kind.name());
            let reserved =
                credits::reserve_tool_run(state, caller, kind.meter(), &run_id, &meta).await?;
            Some(crate::chat::ForcedRun {
                kind,
                run_id,
                reservation: reserved,
            })
        }
    };
    let reservation = match credits::reserve_reply(
        state,
        caller,
        &generation_id,
        u64::from(model.credits),
        estimate,
        &meta,
    )
    .await
    {
        Ok(reservation) => reservation,
        Err(e) => {
            if let Some(run) = &forced {
                state
                    .chat
                    .close_reservation(&run.reservation, &run.run_id, None, &meta)
                    .await;
            }
            return Err(e);
        }
    };
    let tools = tools.map(|(tools, _)| crate::chat::ReplyTools {
        toolbox: std::sync::Arc::new(crate::services::tools::Toolbox::new(
            tools,
            state.clone(),
            caller.clone(),
            generation_id.clone(),
            meta.clone(),
        )),
        forced: forced.clone(),
    });
    let request = Outgoing {
        thread_id,
        model,
        turn: turn_plan,
        new_thread,
        first_exchange: all.is_empty() && title.is_none(),
        generation_id: generation_id.clone(),
        reservation: reservation.clone(),
        received,
        tools,
    };
    let result = start_reply(state, caller, all, request, &meta).await;
    drop(turn);
    match result {
        Ok(cursor) => {
            // Read-your-writes for what follows (a stop, a resume, the thread view): alone on
            // the database, this node's reads wait for it themselves; beside other nodes the
            // send waits (the reply is already running: the wait overlaps the provider's time
            // to first token).
            if !state.sole_writer() {
                state.settle(cursor).await;
            }
            Ok(generation_id)
        }
        Err(e) => {
            // Nothing was started: the credits go back.
            state
                .chat
                .close_reservation(&reservation, &generation_id, None, &meta)
                .await;
            if let Some(run) = &forced {
                state
                    .chat
                    .close_reservation(&run.reservation, &run.run_id, None, &meta)
                    .await;
            }
            Err(e)
        }
    }
}

/// A checked request, ready to start.
struct Outgoing {
    thread_id: ThreadId,
    model: crate::providers::registry::Model,
    turn: UserTurn,
    /// The thread does not exist yet: it is created just before the reply starts.
    new_thread: bool,
    /// The thread's title is generated after this reply.
    first_exchange: bool,
    generation_id: String,
    reservation: Reservation,
    received: std::time::Instant,
    tools: Option<crate::chat::ReplyTools>,
}

/// The tools offered to the model, and the tool chosen for the message.
type ChosenTools = (Vec<crate::tools::Tool>, Option<ForcedTool>);

/// The tools of a reply, or `None` when it uses none: the tools offered to the model (none to
/// a model without the `tools` capability) and the tool chosen for the message. A tool that
/// does not exist, or that this server cannot run, is a 422. MCP servers' tools come after the
/// built-in ones; a server that cannot be listed offers none (the reply goes on without them).
async fn choose_tools(
    state: &web::Data<AppState>,
    model: &crate::providers::registry::Model,
    request: ToolRequest,
) -> Result<Option<ChosenTools>, ApiError> {
    let names = match &request.offered {
        Offered::None => None,
        Offered::All => Some(None),
        Offered::Named(names) => Some(Some(names.as_slice())),
    };
    let can_call = model
        .capabilities
        .contains(&threadline_domain::catalog::Capability::Tools);
    let offered = match names {
        None => Vec::new(),
        Some(names) => {
            let mut offered = crate::tools::choose(state.search.is_some(), names)
                .map_err(|e| ApiError::invalid_field("tools", e.to_string()))?;
            offered.extend(crate::services::tools::mcp_tools(state, names, can_call).await?);
            offered
        }
    };
    let offered = if can_call { offered } else { Vec::new() };
    if request.forced.is_some() && state.search.is_none() {
        return Err(ApiError::invalid_field(
            "tool",
            "this server has no search API configured (EXA_API_KEY)",
        ));
    }
    if offered.is_empty() && request.forced.is_none() {
        return Ok(None);
    }
    Ok(Some((offered, request.forced)))
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
        tools,
    } = request;
    let reply_id = new_message_id();
    let posted_under = turn.new.as_ref().map(|m| m.parent_id.clone());
    let new_attachments = turn
        .new
        .as_ref()
        .map(|m| m.attachments.clone())
        .unwrap_or_default();
    let start = ThreadCommand::StartReply {
        generation_id: generation_id.clone(),
        message_id: reply_id.clone(),
        parent_id: turn.id.clone(),
        model: model.id.clone(),
        user_message: turn.new,
        at: Utc::now(),
    };
    let cursor = if new_thread {
        start_in_new_thread(state, caller, &thread_id, start, meta).await?
    } else {
        state
            .send::<Thread>(thread_id.as_str(), start, meta)
            .await?
    };
    let mut context = Vec::new();
    for (mut message, attachments) in
        context_with_files(all, &turn.id, &turn.text, posted_under, new_attachments)
    {
        if !attachments.is_empty() {
            message.parts = parts::build(state, &model.capabilities, &attachments).await;
        }
        context.push(message);
    }
    if let Some(system) = system_prompt(&crate::services::accounts::preferences_of(state, caller)) {
        context.insert(
            0,
            ChatMessage {
                role: "system".into(),
                content: system,
                parts: Vec::new(),
                ..Default::default()
            },
        );
    }
    state
        .chat
        .start(StartReply {
            generation_id,
            origin: threadline_domain::generation::Origin::Thread {
                thread_id: thread_id.as_str().to_owned(),
                parent_id: turn.id,
            },
            message_id: reply_id,
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
            tools,
            options: Default::default(),
            client_tools: Vec::new(),
        })
        .await?;
    Ok(cursor)
}

/// A lower bound of a reply's cost for the cost budget's reservation: the new message at the
/// model's input price (about four characters a token). The reply settles at its actual cost.
pub(crate) fn estimated_prompt_cost(model: &crate::providers::registry::Model, text: &str) -> u64 {
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
    state.fresh_for_thread(id.as_str()).await;
    if let Some(thread) = threads::get(&state.db, caller.id(), id.as_str()).await? {
        let active = crate::chat::active_generation(&state.db, &thread).await?;
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
            let active = crate::chat::active_generation_in_log(&state.db, id.as_str()).await?;
            Ok(Found::Existing {
                title: title.map(|t| t.as_str().to_owned()),
                active,
            })
        }
        _ => Err(ApiError::NotFound("thread")),
    }
}

/// Creates the caller's new thread `id` and starts its first reply (`start`) in one append.
/// When another send created it first, the reply starts in it if it is the caller's and idle.
async fn start_in_new_thread(
    state: &AppState,
    caller: &Caller,
    id: &ThreadId,
    start: ThreadCommand,
    meta: &CommandMeta,
) -> Result<Option<crate::store::log::Cursor>, ApiError> {
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let create = ThreadCommand::Create {
        owner,
        title: None,
        at: Utc::now(),
    };
    // `find_thread` has just found no `ThreadCreated` in the log: the stream is empty.
    state.bus.assume_new::<Thread>(id.as_str());
    let started = state
        .send::<Thread>(
            id.as_str(),
            ThreadCommand::Batch(vec![create, start.clone()]),
            meta,
        )
        .await;
    match started {
        Err(ApiError::Conflict {
            code: crate::error::ErrorCode::ThreadExists,
            ..
        }) => match find_thread(state, caller, id).await? {
            Found::Existing { active: None, .. } => {
                state.send::<Thread>(id.as_str(), start, meta).await
            }
            Found::Existing {
                active: Some(_), ..
            } => Err(ThreadError::ReplyInProgress.into()),
            Found::New => Err(ApiError::NotFound("thread")),
        },
        other => other,
    }
}
