//! `POST /v1/chat`: send a message (or regenerate a reply) and stream the reply back.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::services::chat;
use crate::state::AppState;

use super::body::{CHAT_BODY_LIMIT, ChatBody};

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let received = std::time::Instant::now();
    let bytes = crate::extract::read_body(payload, CHAT_BODY_LIMIT).await?;
    let request = ChatBody::parse(&req, &bytes)?.into_request()?;
    let generation_id = chat::send(&state, &caller, request, &request_id(&req), received).await?;
    let mut response = super::reply_stream(&state, &caller, generation_id, None);
    // Threadline's own time before the reply starts streaming; the whole reply's overhead
    // (total minus provider wait) is the `threadline_reply_overhead_seconds` metric.
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&format!(
        "{:.3}",
        received.elapsed().as_secs_f64() * 1000.0
    )) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-threadline-overhead-ms"),
            value,
        );
    }
    Ok(response)
}
