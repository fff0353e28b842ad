//! Errors on `/v1/chat/completions` in OpenAI's shape, `{"error": {"message", "type", "param",
//! "code"}}`, so the `openai` SDKs raise their own error classes (`AuthenticationError`,
//! `NotFoundError`, `RateLimitError`, …). The rest of the API answers problem+json; this
//! middleware rewrites the problems of this route only, wherever they were made (the handler,
//! authentication, the body's limits), keeping the status and headers (`Retry-After`).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use serde_json::{Value, json};

/// The paths whose errors are OpenAI's.
pub const PATH: &str = "/v1/chat/completions";

/// OpenAI's error object.
pub fn body(status: StatusCode, code: &str, message: &str, param: Option<&str>) -> Value {
    let kind = match (status.as_u16(), code) {
        (_, "quota_exceeded" | "plan_required" | "premium_required") => "insufficient_quota",
        (429, _) => "rate_limit_error",
        (401, _) => "authentication_error",
        (403, _) => "permission_error",
        (404, _) => "not_found_error",
        (400..=499, _) => "invalid_request_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// Rewrites a problem+json answer of [`PATH`] into OpenAI's error object.
pub async fn rewrite(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let ours = req.path() == PATH;
    let res = next.call(req).await?.map_into_boxed_body();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !ours || !is_problem {
        return Ok(res);
    }
    let status = res.status();
    let (req, res) = res.into_parts();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = problem["code"].as_str().unwrap_or("internal");
    let mut message = problem["detail"].as_str().unwrap_or("error").to_owned();
    // A field error names its field: the message says what is wrong, `param` where.
    let param = problem["errors"]
        .as_object()
        .and_then(|errors| errors.iter().next())
        .map(|(field, messages)| {
            if let Some(first) = messages.get(0).and_then(Value::as_str) {
                message = format!("{field}: {first}");
            }
            field.clone()
        });
    let mut out = actix_web::HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let out = out.json(body(status, code, &message, param.as_deref()));
    Ok(ServiceResponse::new(req, out))
}
