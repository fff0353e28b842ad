//! `POST /v1/chat`: send a message (or regenerate a reply) and stream the reply back.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::services::chat::{self, ChatBody};
use crate::state::AppState;

/// Largest chat body: the AI SDK sends the whole conversation each time.
pub const CHAT_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = ChatBody::parse(&req, &body)?;
    let generation_id = chat::send(&state, &caller, body, &request_id(&req)).await?;
    Ok(super::sse(crate::chat::reader::stream(
        state.chat.clone(),
        generation_id,
        None,
    )))
}
