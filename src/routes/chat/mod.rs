//! `/v1/chat*`: the AI SDK chat transport (send, resume, stop).

pub mod resume;
pub mod send;
pub mod stop;

use actix_web::HttpResponse;
use actix_web::http::header;

/// The generation streaming in `thread` now: from the thread-list projection, or — when that
/// has not caught up — from the thread's own stream in the log (a reply started and not
/// finished).
pub async fn active_generation(
    state: &crate::state::AppState,
    thread: &threadline_projections::threads::ThreadRow,
) -> Result<Option<String>, crate::error::ApiError> {
    if let Some(id) = &thread.active_generation_id {
        // The reply may have ended already (its end is folded before the thread's).
        let ended = threadline_projections::messages::generation(&state.db, id)
            .await?
            .is_some_and(|g| g.status != "running");
        return Ok((!ended).then(|| id.clone()));
    }
    active_generation_in_log(state, &thread.id).await
}

/// The generation streaming in thread `id` according to the thread's own stream in the log (a
/// reply started and not finished): for when the projections have not caught up.
pub async fn active_generation_in_log(
    state: &crate::state::AppState,
    id: &str,
) -> Result<Option<String>, crate::error::ApiError> {
    use threadline_domain::thread::ThreadEvent;
    let latest = |event_type: &'static str| {
        crate::store::log::latest_payload(&state.db, "Thread", id, event_type)
    };
    let started: Option<ThreadEvent> = latest("ReplyStarted")
        .await?
        .and_then(|p| serde_json::from_value(p).ok());
    let Some(ThreadEvent::ReplyStarted { generation_id, .. }) = started else {
        return Ok(None);
    };
    let finished: Option<ThreadEvent> = latest("ReplyFinished")
        .await?
        .and_then(|p| serde_json::from_value(p).ok());
    Ok(match finished {
        Some(ThreadEvent::ReplyFinished {
            generation_id: done,
            ..
        }) if done == generation_id => None,
        _ => Some(generation_id),
    })
}

/// The UI message stream of generation `id` for `caller` (after part `after`), ended when the
/// caller's credential is revoked.
pub fn reply_stream(
    state: &crate::state::AppState,
    caller: &crate::auth::Caller,
    generation_id: String,
    after: Option<crate::chat::render::PartId>,
) -> HttpResponse {
    sse(state.feed.revocations.guard(
        caller,
        crate::chat::reader::stream(state.chat.clone(), generation_id, after),
        crate::revocation::REPLY_CLOSING,
    ))
}

/// An SSE response with the AI SDK UI message stream headers.
pub fn sse<S>(stream: S) -> HttpResponse
where
    S: futures::Stream<Item = Result<actix_web::web::Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-vercel-ai-ui-message-stream", "v1"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}
