//! `GET /v1/threads/{id}`: one thread with its messages.

use actix_web::{HttpResponse, web};

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::thread_view::view;
use crate::state::AppState;

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state.db, thread).await?))
}
