//! `GET /v1/threads/{id}`: one thread with its messages.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use threadline_projections::messages;

use super::{ThreadJson, owned};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::chat::ui_message;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ThreadWithMessages {
    #[serde(flatten)]
    pub thread: ThreadJson,
    /// The messages of the thread's current path, oldest first, as AI SDK `UIMessage`s.
    pub messages: Vec<serde_json::Value>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let all = messages::all_of(&state.db, &thread.id).await?;
    let mut out = Vec::new();
    for p in messages::current_path(&all) {
        let generation = match &p.message.generation_id {
            Some(id) => messages::generation(&state.db, id).await?,
            None => None,
        };
        out.push(ui_message(&p, generation.as_ref()));
    }
    Ok(HttpResponse::Ok().json(ThreadWithMessages {
        thread: thread.into(),
        messages: out,
    }))
}
