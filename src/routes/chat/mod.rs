//! `/v1/chat*`: the AI SDK chat transport (send, resume, stop).

pub mod body;
pub mod check;
pub mod resume;
pub mod send;
pub mod stop;

use actix_web::HttpResponse;
use actix_web::http::header;

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
