//! `GET /v1/events`: the caller's live feed (SSE). `Last-Event-ID` resumes after a cursor.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::log::parse_cursor;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let invalid = || ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidCursor,
        detail: "Last-Event-ID is not a cursor this server issued".into(),
    };
    let after = match req.headers().get("last-event-id") {
        Some(id) => {
            let cursor = id
                .to_str()
                .ok()
                .and_then(parse_cursor)
                .ok_or_else(invalid)?;
            // The feed's ids are the cursors of events in the log: anything else (beyond the
            // head, say, which would hide everything until the log caught up) was never
            // issued.
            if !crate::store::log::is_event(&state.db, cursor).await? {
                return Err(invalid());
            }
            Some(cursor)
        }
        None => None,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(
            state.feed.revocations.guard(
                &caller,
                state
                    .feed
                    .clone()
                    .stream(caller.id().to_owned(), caller.session_id.clone(), after),
                crate::revocation::FEED_CLOSING,
            ),
        ))
}
