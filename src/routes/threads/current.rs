//! `PUT /v1/threads/{id}/current`: make the path through a message current (its newest
//! descendant becomes the leaf), for every device.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use threadline_domain::values::MessageId;
use validator::Validate;

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::services::threads;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct ChooseCurrent {
    pub message_id: String,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ValidJson(body): ValidJson<ChooseCurrent>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let message = MessageId::parse(&body.message_id)
        .map_err(|e| ApiError::invalid_field("message_id", e.0))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    threads::choose_current(&state, &thread, message.as_str(), &meta).await?;
    let thread = owned(&state, &caller, &thread.id).await?;
    Ok(HttpResponse::Ok().json(crate::services::thread_view::view(&state.db, thread).await?))
}
