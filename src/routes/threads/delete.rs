//! `DELETE /v1/threads/{id}`: delete a thread (its history stays in the log).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use threadline_domain::thread::{Thread, ThreadCommand};

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Thread>(&thread.id, ThreadCommand::Delete { at: Utc::now() }, &meta)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
