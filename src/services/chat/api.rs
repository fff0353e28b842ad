//! A call of the stateless API (`POST /v1/chat/completions`): a reply to a conversation the
//! caller sends whole, in no thread. It is a generation like a thread's reply — in the log,
//! charged through the same ledger, counted in the same reports — with the caller's own tools.

use actix_web::web;
use threadline_domain::catalog::Capability;
use threadline_domain::generation::{Origin, Payer};

use crate::auth::Caller;
use crate::chat::StartReply;
use crate::error::{ApiError, ErrorCode};
use crate::providers::{CallOptions, ChatMessage, ToolSpec, registry::Model};
use crate::services::chat::FileSource;
use crate::services::credits;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// What the caller asks for.
pub struct ApiCall {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Images of the messages, by message index.
    pub images: Vec<(usize, FileSource)>,
    pub options: CallOptions,
    pub tools: Vec<ToolSpec>,
}

/// Checks the call (the model and its access rule, its tools and images), reserves its credits
/// and starts the reply; returns its generation id and the model.
pub async fn start(
    state: &web::Data<AppState>,
    caller: &Caller,
    call: ApiCall,
    request_id: &str,
    received: std::time::Instant,
) -> Result<(String, Model), ApiError> {
    let ApiCall {
        model,
        mut messages,
        images,
        options,
        tools,
    } = call;
    let model = match super::access::resolve_model(state, caller, &model).await {
        Err(ApiError::Validation(errors)) if unknown_model(&errors) => {
            return Err(ApiError::Http {
                status: actix_web::http::StatusCode::NOT_FOUND,
                code: ErrorCode::ModelNotFound,
                detail: format!("the model {model:?} does not exist or is not offered here"),
            });
        }
        other => other?,
    };
    if !tools.is_empty() && !model.capabilities.contains(&Capability::Tools) {
        return Err(ApiError::invalid_field(
            "tools",
            format!("the model {:?} cannot call tools", model.id),
        ));
    }
    let generation_id = uuid::Uuid::now_v7().to_string();
    let meta = CommandMeta::for_request(request_id, Some(caller.id().to_owned()));
    if !images.is_empty() {
        let (indexes, sources): (Vec<usize>, Vec<FileSource>) = images.into_iter().unzip();
        let prepared = crate::services::files::prepare(state, caller, sources).await?;
        super::parts::check(&model, &prepared)?;
        let stored = crate::services::files::store_prepared(state, caller, prepared, &meta).await?;
        for (index, attachment) in indexes.into_iter().zip(stored) {
            let parts = super::parts::build(state, &model.capabilities, &[attachment]).await;
            if let Some(message) = messages.get_mut(index) {
                message.parts.extend(parts);
            }
        }
    }
    let prompt: String = messages.iter().map(|m| m.content.as_str()).collect();
    let estimate = super::estimated_prompt_cost(&model, &prompt);
    let reservation = credits::reserve_reply(
        state,
        caller,
        &generation_id,
        u64::from(model.credits),
        estimate,
        &meta,
    )
    .await?;
    let started = state
        .chat
        .start(StartReply {
            generation_id: generation_id.clone(),
            origin: Origin::Api,
            message_id: super::tree::new_message_id(),
            model: model.clone(),
            context: messages,
            needs_title: false,
            first_user_text: String::new(),
            meta: meta.clone(),
            received,
            reservation: reservation.clone(),
            payer: Payer {
                account_id: caller.id().to_owned(),
                tier: credits::tier_of(caller),
            },
            tools: None,
            options,
            client_tools: tools,
        })
        .await;
    if let Err(e) = started {
        // Nothing was started: the credits go back.
        state
            .chat
            .close_reservation(&reservation, &generation_id, None, &meta)
            .await;
        return Err(e);
    }
    Ok((generation_id, model))
}

/// Whether the model was refused for not existing (not for being disabled or unconfigured).
fn unknown_model(errors: &std::collections::BTreeMap<String, Vec<String>>) -> bool {
    errors
        .get("model")
        .is_some_and(|m| m.iter().any(|m| m.starts_with("unknown model")))
}
