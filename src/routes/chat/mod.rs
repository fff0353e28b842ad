//! `/v1/chat*`: the AI SDK chat transport (send, resume, stop).

pub mod resume;
pub mod send;
pub mod stop;

use actix_web::HttpResponse;
use actix_web::http::header;

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
