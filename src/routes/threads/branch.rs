//! `POST /v1/threads/{id}/branch`: a new thread whose history is this thread's path up to a
//! message.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use threadline_domain::values::{MessageId, Title};
use validator::Validate;

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::services::threads;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct Branch {
    pub message_id: String,
    #[validate(length(min = 1, max = 200))]
    pub title: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ValidJson(body): ValidJson<Branch>,
) -> Result<HttpResponse, ApiError> {
    let source = owned(&state, &caller, &path).await?;
    let message = MessageId::parse(&body.message_id)
        .map_err(|e| ApiError::invalid_field("message_id", e.0))?;
    let title = body
        .title
        .as_deref()
        .map(Title::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("title", e.0))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let id = threads::branch(&state, &caller, &source, message.as_str(), title, &meta).await?;
    let thread = owned(&state, &caller, id.as_str()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/threads/{}", id.as_str())))
        .json(crate::services::thread_view::view(&state.db, thread).await?))
}
