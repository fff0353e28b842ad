//! `POST /v1/chat/{thread_id}/stop`: stop the thread's active reply on whichever node runs it.
//! The partial reply is kept and marked stopped.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;
use threadline_domain::thread::{Thread, ThreadCommand, ThreadEvent};
use threadline_projections::messages;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::routes::threads::owned;
use crate::state::AppState;
use crate::store::bus::CommandMeta;
use crate::store::log;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .send::<Thread>(
            &thread.id,
            ThreadCommand::RequestStop { at: Utc::now() },
            &meta,
        )
        .await?;
    // Which reply to stop comes from the event just recorded, not from a projection that may
    // not have seen the reply start yet.
    let stop_request: Option<ThreadEvent> =
        log::latest_payload(&state.db, "Thread", &thread.id, "ReplyStopRequested")
            .await?
            .and_then(|payload| serde_json::from_value(payload).ok());
    let Some(ThreadEvent::ReplyStopRequested { generation_id, .. }) = stop_request else {
        return Err(ApiError::Conflict {
            code: crate::error::ErrorCode::NoActiveReply,
            detail: "no reply is streaming in this thread".into(),
        });
    };
    state.chat.stop(&generation_id).await?;
    // Answer once the reply has ended, so the caller's next read shows it stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut status = messages::ReplyStatus::Running.generation_str().to_owned();
    while tokio::time::Instant::now() < deadline {
        if let Some(g) = messages::generation(&state.db, &generation_id).await?
            && !g.is_running()
        {
            status = g.status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(HttpResponse::Ok().json(json!({"generation_id": generation_id, "status": status})))
}
