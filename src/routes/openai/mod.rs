//! `POST /v1/chat/completions`: OpenAI's Chat Completions, for the `openai` SDKs and every
//! tool built on them. The reply is a generation of the stateless API (in no thread), charged
//! through the same ledger as a chat reply; it streams as `chat.completion.chunk` objects
//! ending `data: [DONE]`, or answers one `chat.completion`. Errors on this route are OpenAI's
//! `{"error": {...}}` ([`errors`]).
//!
//! # Layout
//! - [`body`]: the request, read and checked.
//! - [`render`]: the generation's events in OpenAI's shapes.
//! - [`errors`]: problem+json rewritten into OpenAI's error object, for this route only.

pub mod body;
pub mod errors;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::{Stream, StreamExt};
use threadline_domain::generation::GenerationEvent;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::chat::ChatService;
use crate::error::{ApiError, ErrorCode};
use crate::extract::request_id;
use crate::services::chat::api;
use crate::state::AppState;
use render::{Completion, Ended};

/// Keep-alive comment interval while the model is silent.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a follower without the live feed re-reads the log when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);
/// The end of a stream whose credential was revoked.
const REVOKED: &str = "data: {\"error\":{\"message\":\"the credential was revoked\",\"type\":\"authentication_error\",\"param\":null,\"code\":\"unauthenticated\"}}\n\ndata: [DONE]\n\n";

pub async fn completions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let received = std::time::Instant::now();
    let bytes = crate::extract::read_body(payload, body::BODY_LIMIT).await?;
    let request = body::Completion::parse(&bytes)?;
    let (stream, include_usage) = (request.stream, request.include_usage);
    let call = api::ApiCall {
        model: request.model,
        messages: request.messages,
        images: request.images,
        options: request.options,
        tools: request.tools,
    };
    let (generation_id, model) =
        api::start(&state, &caller, call, &request_id(&req), received).await?;
    let counting = model.provider.usage_counting();
    let mut completion = Completion::new(&generation_id, &model.id, counting);
    let mut reply = Reply {
        events: Box::pin(follow(state.chat.clone(), generation_id.clone())),
        stop: StopOnDrop {
            service: state.chat.clone(),
            id: generation_id.clone(),
            armed: true,
        },
    };
    // Nothing is sent before the first token or the end: a reply that fails before it answers
    // as an error status, as OpenAI's API does.
    let mut first = Vec::new();
    while first.is_empty() && completion.ended().is_none() {
        match reply.events.next().await {
            Some(Ok(event)) => first.extend(completion.fold(&event, include_usage)),
            Some(Err(e)) => return Err(e),
            None => return Err(ApiError::Internal("the reply's events ended early".into())),
        }
        // A non-streaming call reads to the end here.
        if !stream {
            first.clear();
        }
    }
    if let Some(Ended::Failed(error)) = completion.ended()
        && !completion.has_output()
    {
        reply.stop.disarm();
        return Err(failed(error));
    }
    if !stream {
        reply.stop.disarm();
        let Some(Ended::Finished {
            finish_reason,
            usage,
        }) = completion.ended()
        else {
            let error = match completion.ended() {
                Some(Ended::Failed(error)) => error.clone(),
                _ => "the reply did not finish".into(),
            };
            return Err(failed(&error));
        };
        return Ok(HttpResponse::Ok()
            .insert_header(("x-threadline-generation-id", generation_id))
            .json(completion.finished(finish_reason, usage)));
    }
    let frames = async_stream::stream! {
        let mut text: String = first.iter().map(frame).collect();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            if let Some(ended) = completion.ended() {
                if let Ended::Failed(error) = ended {
                    text.push_str(&frame(&errors::body(
                        actix_web::http::StatusCode::BAD_GATEWAY,
                        ErrorCode::UpstreamError.as_str(),
                        error,
                        None,
                    )));
                }
                text.push_str("data: [DONE]\n\n");
                reply.stop.disarm();
                yield Ok::<_, actix_web::Error>(Bytes::from(text));
                return;
            }
            if !text.is_empty() {
                yield Ok(Bytes::from(std::mem::take(&mut text)));
            }
            tokio::select! {
                event = reply.events.next() => match event {
                    Some(Ok(event)) => {
                        text = completion.fold(&event, include_usage).iter().map(frame).collect();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cannot follow an API reply");
                        yield Ok(Bytes::from(format!("{}data: [DONE]\n\n", frame(&errors::body(
                            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::Unavailable.as_str(),
                            "the reply could not be read",
                            None,
                        )))));
                        return;
                    }
                    None => return,
                },
                _ = keepalive.tick() => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .insert_header(("x-threadline-generation-id", generation_id))
        .streaming(state.feed.revocations.guard(&caller, frames, REVOKED)))
}

/// A reply that failed before it answered anything: the provider's failure, as a 502.
fn failed(error: &str) -> ApiError {
    ApiError::Upstream(format!("the model's provider failed: {error}"))
}

fn frame(chunk: &serde_json::Value) -> String {
    format!("data: {chunk}\n\n")
}

/// A running reply and what stops it when its caller goes away.
struct Reply<S> {
    events: std::pin::Pin<Box<S>>,
    stop: StopOnDrop,
}

/// Stops the reply when the request is dropped before its end: a caller of this API that
/// disconnects cancels the call (nobody can resume it), and pays only for what was streamed.
struct StopOnDrop {
    service: Arc<ChatService>,
    id: String,
    armed: bool,
}

impl StopOnDrop {
    /// The reply has ended (or never needs stopping).
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.service.stop_local(&self.id);
        }
    }
}

/// The events of generation `id`, which runs on this node: from memory while its batches are
/// kept and the feed keeps up, else from the log; to its terminal event.
fn follow(
    service: Arc<ChatService>,
    id: String,
) -> impl Stream<Item = Result<GenerationEvent, ApiError>> {
    async_stream::stream! {
        let (mut memory, mut live) = match service.follow(&id) {
            Some((kept, rx)) => (kept, Some(rx)),
            None => (None, None),
        };
        let mut signal = service.signals.subscribe();
        let mut last = 0i64;
        'reload: loop {
            let backlog: Vec<(i64, GenerationEvent)> = match memory.take() {
                Some(batches) => batches
                    .iter()
                    .flat_map(|b| b.events.iter())
                    .filter(|(seq, _)| *seq > last)
                    .cloned()
                    .collect(),
                None => match crate::chat::reader::load_after(&service.db, service.keys(), &id, last).await {
                    Ok(events) => events,
                    Err(e) => {
                        yield Err(ApiError::from(e));
                        return;
                    }
                },
            };
            for (seq, event) in backlog {
                last = seq;
                let end = event.terminal_status().is_some();
                yield Ok(event);
                if end {
                    return;
                }
            }
            loop {
                tokio::select! {
                    batch = async { match live.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                        match batch {
                            Ok(batch) => {
                                for (seq, event) in &batch.events {
                                    if *seq <= last {
                                        continue;
                                    }
                                    if *seq != last + 1 {
                                        continue 'reload;
                                    }
                                    last = *seq;
                                    let end = event.terminal_status().is_some();
                                    yield Ok(event.clone());
                                    if end {
                                        return;
                                    }
                                }
                            }
                            Err(RecvError::Lagged(_)) => continue 'reload,
                            Err(RecvError::Closed) => {
                                live = None;
                                continue 'reload;
                            }
                        }
                    }
                    changed = signal.changed(), if live.is_none() => {
                        if changed.is_err() {
                            tokio::time::sleep(POLL).await;
                        }
                        continue 'reload;
                    }
                    _ = tokio::time::sleep(POLL), if live.is_none() => continue 'reload,
                }
            }
        }
    }
}
