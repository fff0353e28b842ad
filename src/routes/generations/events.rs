//! `GET /v1/generations/{id}/events`: replay any reply from the log, finished or not, and follow
//! it live; `Last-Event-ID` or `?after=` resumes after a part; `?speed=1x` (`2x`, `max`, …)
//! replays it at the pace it was written.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use threadline_projections::{messages, threads};

use crate::auth::Caller;
use actix_web::web::Bytes;
use futures::StreamExt;

use crate::chat::render::{PartId, SSE_DONE};
use crate::chat::replay::{Paced, Speed};
use crate::error::ApiError;
use crate::routes::chat::resume::{issued_part, last_event_id};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Resume after this part id (`"{sequence}.{k}"`), like `Last-Event-ID`.
    pub after: Option<String>,
    /// Replay at the recorded pace: `1x`, `2x`, `0.5x`, … or `max`.
    pub speed: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let generation = messages::generation(&state.db, &path)
        .await?
        .ok_or(ApiError::NotFound("generation"))?;
    // A reply in a thread belongs to the thread's owner; one of the stateless API to whoever
    // it was charged to.
    let owned = if generation.thread_id == messages::NO_THREAD {
        crate::chat::reader::payer(&state.db, state.chat.keys(), &generation.id)
            .await?
            .as_deref()
            == Some(caller.id())
    } else {
        threads::get(&state.db, caller.id(), &generation.thread_id)
            .await?
            .is_some()
    };
    if !owned {
        return Err(ApiError::NotFound("generation"));
    }
    let after = match query.after.as_deref() {
        Some(a) => Some(PartId::parse(a).ok_or_else(|| ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidCursor,
            detail: "after is not a part id this reply issued (like 3.1)".into(),
        })?),
        None => last_event_id(&req)?,
    };
    let after = issued_part(&state, &generation.id, after).await?;
    if let Some(speed) = query.speed.as_deref() {
        let speed = Speed::parse(speed).ok_or_else(|| {
            ApiError::invalid_field("speed", "`1x`, `2x`, `0.5x`… (0.01x to 1000x) or `max`")
        })?;
        let events =
            crate::chat::replay::load(&state.db, state.chat.keys(), &generation.id).await?;
        return Ok(paced_stream(
            &state,
            &caller,
            generation.id,
            events,
            speed,
            after,
        ));
    }
    Ok(crate::routes::chat::reply_stream(
        &state,
        &caller,
        generation.id,
        after,
    ))
}

/// The recorded events at `speed`, then (for a reply still running) its live stream from
/// where the recording ended; closed when the caller's credential is revoked.
fn paced_stream(
    state: &AppState,
    caller: &Caller,
    id: String,
    events: Vec<crate::chat::replay::TimedEvent>,
    speed: Speed,
    after: Option<PartId>,
) -> HttpResponse {
    let clock = state.settings.replay_clock.clone();
    let service = state.chat.clone();
    let stream = async_stream::stream! {
        let paced = crate::chat::replay::paced(events, speed, clock, after);
        futures::pin_mut!(paced);
        while let Some(item) = paced.next().await {
            match item {
                Paced::Frames(frames) => yield Ok(Bytes::from(frames)),
                Paced::End { done: true, .. } => {
                    yield Ok(Bytes::from_static(SSE_DONE.as_bytes()));
                }
                Paced::End { last, done: false } => {
                    let live = crate::chat::reader::stream(service.clone(), id.clone(), last);
                    futures::pin_mut!(live);
                    while let Some(frames) = live.next().await {
                        yield frames;
                    }
                }
            }
        }
    };
    crate::routes::chat::sse(state.feed.revocations.guard(
        caller,
        stream,
        crate::revocation::REPLY_CLOSING,
    ))
}
