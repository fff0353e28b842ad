//! `POST /v1/webhooks/polar` (Standard Webhooks signature) and `POST /v1/webhooks/stripe`
//! (`stripe-signature`): verified in constant time within a five-minute tolerance, recorded
//! once per delivery id, applied (see [`crate::services::webhooks`]).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::billing::payloads::{self, PolarEvent, StripeEvent, Unreadable};
use crate::billing::signature::{self, SignatureError, StandardHeaders};
use crate::error::ApiError;
use crate::extract::{read_body, request_id};
use crate::services::webhooks::{self, Outcome};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Delivered {
    /// `subscription`, `credits`, `ignored` or `duplicate`.
    pub outcome: Outcome,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn refused(e: SignatureError) -> ApiError {
    match e {
        // Checked at start-up; reaching here would be a bug, not the sender's fault.
        SignatureError::BadSecret => ApiError::Internal(e.to_string()),
        e => ApiError::BadSignature {
            code: e.code(),
            detail: e.to_string(),
        },
    }
}

/// The provider's webhook secret; a 404 when the server has none (the route is off).
fn configured<'a>(
    secret: Option<&'a secrecy::SecretString>,
    provider: &str,
) -> Result<&'a str, ApiError> {
    secret
        .map(secrecy::ExposeSecret::expose_secret)
        .ok_or_else(|| {
            ApiError::RouteNotFound(format!(
                "{provider} webhooks are not configured on this server"
            ))
        })
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidJson,
        detail: format!("the body is not valid JSON: {e}"),
    })
}

/// Largest webhook body (providers' events are a few kilobytes).
const WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

pub async fn polar(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let billing = &state.settings.billing;
    let secret = configured(billing.polar_webhook_secret.as_ref(), "Polar")?;
    let body = read_body(payload, WEBHOOK_BODY_LIMIT).await?;
    let headers = StandardHeaders {
        id: header(&req, "webhook-id"),
        timestamp: header(&req, "webhook-timestamp"),
        signature: header(&req, "webhook-signature"),
    };
    signature::verify_standard_webhook(
        secret,
        &headers,
        &body,
        Utc::now().timestamp(),
        signature::TOLERANCE_SECS,
    )
    .map_err(refused)?;
    let delivery_id = headers.id.unwrap_or_default().to_owned();
    let event: PolarEvent = payloads::read(&json(&body)?, "event")?;
    let effect = webhooks::polar_effect(&state.settings.plans, &event)?;
    apply(&req, &state, "polar", &delivery_id, &event.kind, effect).await
}

pub async fn stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let billing = &state.settings.billing;
    let secret = configured(billing.stripe_webhook_secret.as_ref(), "Stripe")?;
    let body = read_body(payload, WEBHOOK_BODY_LIMIT).await?;
    signature::verify_stripe(
        secret,
        header(&req, "stripe-signature"),
        &body,
        Utc::now().timestamp(),
        signature::TOLERANCE_SECS,
    )
    .map_err(refused)?;
    let event: StripeEvent = payloads::read(&json(&body)?, "event")?;
    if event.id.is_empty() {
        return Err(Unreadable::missing("event.id").into());
    }
    let effect = webhooks::stripe_effect(&state.settings.plans, &event)?;
    apply(&req, &state, "stripe", &event.id, &event.kind, effect).await
}

/// Records and applies a verified delivery.
async fn apply(
    req: &HttpRequest,
    state: &AppState,
    provider: &str,
    delivery_id: &str,
    event_type: &str,
    effect: webhooks::Effect,
) -> Result<HttpResponse, ApiError> {
    let request_id = request_id(req);
    let outcome = webhooks::deliver(
        state,
        provider,
        delivery_id,
        event_type,
        effect,
        &request_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Delivered { outcome }))
}
