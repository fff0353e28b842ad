//! Middleware every request passes through, outermost first:
//!
//! - [`problems`]: any error response that is not `application/problem+json` yet (actix's own
//!   payload and extractor errors) is rewritten into one, with a stable `code`.
//! - [`log_request`]: one `info` line per request (method, path, status, microseconds).
//! - [`body_deadline`]: the body must arrive within the configured time, or the request ends
//!   with `408 request_timeout` (slow headers are already cut by actix's request timeout).
//! - [`authenticate`]: a bearer token (or the web app's session cookie) is resolved before any
//!   extractor runs, so a bad token is a 401 before the body is read or validated. Then the
//!   request waits until the projections show what this node last wrote for its caller (for
//!   admin routes and shared threads: everything it wrote), read-your-writes on the read side,
//!   so a write may answer without waiting for them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, ResponseError};
use futures::Stream;

use crate::error::ApiError;
use crate::extract::caller::Authenticated;
use crate::state::AppState;

/// Rewrites error responses that are not problem+json into problems.
pub async fn problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        // Errors are normally responses by now; one that is not is rendered by the server
        // from this problem.
        Err(e) if e.as_error::<ApiError>().is_some() => return Err(e),
        Err(e) => {
            let status = e.as_response_error().status_code();
            return Err(ApiError::from_status(status).into());
        }
    };
    let status = res.status();
    if status.as_u16() < 400 || is_problem(res.headers()) {
        return Ok(res);
    }
    let mut problem = ApiError::from_status(status).error_response();
    // Keep what other layers added (CORS, `Retry-After`, `Connection`).
    for (name, value) in res.headers() {
        if name != header::CONTENT_LENGTH && !problem.headers().contains_key(name) {
            problem.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(res.into_response(problem))
}

fn is_problem(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"))
}

/// Logs every request at `info`: method, path (never the query), status and duration.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let res = next.call(req).await?;
    tracing::info!(
        %method,
        path,
        status = res.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(res)
}

/// How much each byte received extends a body's deadline: a body that keeps arriving at
/// 64 KiB/s or faster never times out (a large import on a slow link), while one that trickles
/// in gains next to nothing.
const EARNED_PER_BYTE: Duration = Duration::from_nanos(1_000_000_000 / 65_536);

/// Bounds the time to receive a request's body: the configured time, plus what the bytes
/// received so far have earned.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(Duration::from_secs(15), |state| state.settings.body_timeout);
    let payload = req.take_payload();
    let deadline = Deadline {
        inner: payload,
        sleep: Box::pin(tokio::time::sleep(limit)),
        until: tokio::time::Instant::now() + limit,
        done: false,
    };
    req.set_payload(Payload::from(
        Box::pin(deadline) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let mut res = next.call(req).await?;
    if res.status() == actix_web::http::StatusCode::REQUEST_TIMEOUT {
        // The rest of a body that stopped arriving is not worth waiting for.
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(res)
}

/// A request body that fails with a time-out once its deadline passes.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    until: tokio::time::Instant,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            self.done = item.is_none();
            if let Some(Ok(chunk)) = &item {
                let earned =
                    EARNED_PER_BYTE.saturating_mul(chunk.len().try_into().unwrap_or(u32::MAX));
                self.until += earned;
                let until = self.until;
                self.sleep.as_mut().reset(until);
            }
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.done = true;
                Poll::Ready(Some(Err(crate::extract::timed_out())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Resolves the bearer token or session cookie (if any) before the handler's extractors run; the `Caller` and
/// `MaybeCaller` extractors take the result from the request's extensions.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>().cloned()
        && let Some(resolved) =
            crate::extract::caller::authenticate(req.request(), state.clone()).await
    {
        if let Authenticated(Ok(caller), _) = &resolved {
            if reads_across_accounts(&req) {
                state.fresh_for_everyone().await;
            } else if !is_send(&req) {
                state.fresh_for_account(caller.id()).await;
            }
        }
        req.extensions_mut().insert(resolved);
    } else if let Some(state) = req.app_data::<web::Data<AppState>>()
        && reads_across_accounts(&req)
    {
        state.fresh_for_everyone().await;
    }
    next.call(req).await
}

/// Admin routes and shared threads read other accounts' data: they wait for everything this
/// node wrote, not only their caller's writes.
fn reads_across_accounts(req: &ServiceRequest) -> bool {
    let path = req.path();
    path.starts_with("/v1/admin/") || path.starts_with("/v1/shares/")
}

/// A send reads only its own thread, and waits for that alone
/// ([`AppState::fresh_for_thread`]): a caller's sends in other threads do not hold it up.
fn is_send(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::POST && req.path() == "/v1/chat"
}
