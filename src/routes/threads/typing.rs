//! `POST /v1/threads/{id}/typing`: tell the caller's other devices, on the live feed, that
//! they are typing in this thread. Ephemeral: nothing is logged (see `crate::feed`).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::feed::Ephemeral;
use crate::state::AppState;

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    state
        .feed
        .signal(Ephemeral {
            owner: caller.id().to_owned(),
            from_session: caller.session_id.clone(),
            json: json!({
                "type": "typing",
                "thread_id": thread.id,
                "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
