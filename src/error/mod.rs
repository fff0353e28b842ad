//! The API's error type: every failure a client sees is `application/problem+json` (RFC 9457)
//! with a stable machine-readable `code`. 5xx bodies stay opaque; their cause is logged.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use threadline_domain::account::AccountError;
use threadline_domain::email::EmailError;
use threadline_domain::thread::ThreadError;

use crate::store::bus::CommandError;

mod code;
pub use code::ErrorCode;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad query string, bad path).
    #[error("{detail}")]
    BadRequest { code: ErrorCode, detail: String },
    /// 422: the body parsed but its fields break the rules; `errors` names each field.
    #[error("the request has invalid fields")]
    Validation(BTreeMap<String, Vec<String>>),
    /// 401: no valid bearer token, or wrong credentials.
    #[error("{detail}")]
    Unauthorized { code: ErrorCode, detail: String },
    /// 401: a webhook's signature did not verify (no bearer challenge: webhooks sign, they do
    /// not authenticate).
    #[error("{detail}")]
    BadSignature { code: ErrorCode, detail: String },
    /// 403: authenticated but not allowed (`forbidden`, `account_required`).
    #[error("{detail}")]
    Forbidden { code: ErrorCode, detail: String },
    /// 404: no such resource for this caller (another account's resources included).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404: no route matches the path.
    #[error("{0}")]
    RouteNotFound(String),
    /// 405: the route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the resource's state.
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    /// 413: the body is larger than allowed.
    #[error("the request body is too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    /// 408: the request body did not arrive in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// Any other status the HTTP framework answered on its own (a body it could not read, a
    /// length it refused): re-dressed as a problem with a code named after the status.
    #[error("{detail}")]
    Http {
        status: StatusCode,
        code: ErrorCode,
        detail: String,
    },
    /// 415: the body is not JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 429: a rate limit was hit; retry after the given seconds.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u64 },
    /// 429: a plan's meter is used up for its window; the problem says which, how much was
    /// used of what limit, and when the window resets.
    #[error("the {meter} of this plan are used up until {resets_at}")]
    QuotaExceeded {
        meter: &'static str,
        limit: u64,
        used: u64,
        resets_at: String,
        retry_after: u64,
    },
    /// 402: the caller's plan does not include this meter at all (research on the free tier);
    /// a subscription would.
    #[error("the {tier} plan includes no {meter}; upgrade to use them")]
    PlanRequired {
        meter: &'static str,
        tier: &'static str,
    },
    /// 502: an upstream service (a billing provider) refused or failed.
    #[error("{0}")]
    Upstream(String),
    /// 402: the model needs a plan the caller does not have (a subscription would grant it).
    #[error("{detail}")]
    PremiumRequired { detail: String, tier: &'static str },
    /// 503: a dependency (the database) is unavailable; retrying later may work.
    #[error("service unavailable")]
    Unavailable(String),
    /// 500: a bug or a corrupt state; details only in the logs.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a BTreeMap<String, Vec<String>>>,
    /// For `quota_exceeded`: the meter, its limit, use, what remains and when it resets.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    quota: Option<serde_json::Value>,
}

impl ApiError {
    /// The stable code clients can branch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::BadSignature { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. } => *code,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::RouteNotFound(_) => ErrorCode::RouteNotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::Http { code, .. } => *code,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::TooManyRequests { .. } => ErrorCode::RateLimited,
            ApiError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            ApiError::PlanRequired { .. } => ErrorCode::PlanRequired,
            ApiError::PremiumRequired { .. } => ErrorCode::PremiumRequired,
            ApiError::Upstream(_) => ErrorCode::UpstreamError,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A 401 for a missing or unknown token.
    pub fn unauthenticated() -> Self {
        ApiError::Unauthorized {
            code: ErrorCode::Unauthenticated,
            detail: "a valid bearer token is required".into(),
        }
    }

    /// The problem for a status the framework answered without one (see
    /// [`crate::middleware::problems`]). Server errors stay opaque.
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status.as_u16() {
            404 => ErrorCode::RouteNotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            411 => ErrorCode::LengthRequired,
            413 => ErrorCode::PayloadTooLarge,
            414 => ErrorCode::UriTooLong,
            415 => ErrorCode::UnsupportedMediaType,
            431 => ErrorCode::HeadersTooLarge,
            400..=499 => ErrorCode::BadRequest,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        if status.is_server_error() {
            return match code {
                ErrorCode::Unavailable => {
                    ApiError::Unavailable(format!("framework answered {status}"))
                }
                _ => ApiError::Internal(format!("framework answered {status}")),
            };
        }
        ApiError::Http {
            status,
            code,
            detail: status
                .canonical_reason()
                .unwrap_or("the request could not be handled")
                .to_lowercase(),
        }
    }

    /// A 422 for one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl<E: std::error::Error + Into<ApiError>> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(e) => e.into(),
            CommandError::Conflict => ApiError::Conflict {
                code: ErrorCode::ConcurrentUpdate,
                detail: "the resource is being changed by another request; retry".into(),
            },
            CommandError::Unavailable(m) => ApiError::Unavailable(m),
            CommandError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<ThreadError> for ApiError {
    fn from(e: ThreadError) -> Self {
        match e {
            ThreadError::AlreadyExists => ApiError::Conflict {
                code: ErrorCode::ThreadExists,
                detail: e.to_string(),
            },
            ThreadError::NotFound => ApiError::NotFound("thread"),
            ThreadError::ParentNotFound => ApiError::NotFound("message"),
            ThreadError::MessageExists => ApiError::Conflict {
                code: ErrorCode::MessageExists,
                detail: e.to_string(),
            },
            ThreadError::ReplyInProgress => ApiError::Conflict {
                code: ErrorCode::ReplyInProgress,
                detail: e.to_string(),
            },
            ThreadError::NoActiveReply => ApiError::Conflict {
                code: ErrorCode::NoActiveReply,
                detail: e.to_string(),
            },
            ThreadError::MessageNotFound => ApiError::NotFound("message"),
            ThreadError::ShareNotFound => ApiError::NotFound("share"),
            ThreadError::InvalidHistory(why) => ApiError::invalid_field("messages", why),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NotFound | AccountError::Erased => ApiError::NotFound("account"),
            AccountError::SessionNotFound => ApiError::NotFound("session"),
            AccountError::AlreadyExists => ApiError::Conflict {
                code: ErrorCode::AccountExists,
                detail: e.to_string(),
            },
            AccountError::AlreadyLinked => ApiError::Conflict {
                code: ErrorCode::AlreadyLinked,
                detail: e.to_string(),
            },
            AccountError::ApiKeyNotFound => ApiError::NotFound("api key"),
            AccountError::TooManyApiKeys => ApiError::Conflict {
                code: ErrorCode::TooManyApiKeys,
                detail: e.to_string(),
            },
            AccountError::NoPinnedModel => {
                ApiError::invalid_field("pinned_models", "at least one model must stay pinned")
            }
            AccountError::NotAnonymous | AccountError::NotRegistered | AccountError::LinkToSelf => {
                ApiError::Conflict {
                    code: ErrorCode::CannotLink,
                    detail: e.to_string(),
                }
            }
        }
    }
}

impl From<threadline_domain::catalog::CatalogError> for ApiError {
    fn from(e: threadline_domain::catalog::CatalogError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<threadline_domain::mcp::McpServerError> for ApiError {
    fn from(e: threadline_domain::mcp::McpServerError) -> Self {
        match e {
            threadline_domain::mcp::McpServerError::NotRegistered => {
                ApiError::NotFound("MCP server")
            }
        }
    }
}

impl From<threadline_domain::ledger::LedgerError> for ApiError {
    fn from(e: threadline_domain::ledger::LedgerError) -> Self {
        // Exhaustion is turned into `QuotaExceeded` where the window is known.
        ApiError::Internal(e.to_string())
    }
}

impl From<threadline_domain::billing::DeliveryError> for ApiError {
    fn from(e: threadline_domain::billing::DeliveryError) -> Self {
        ApiError::Conflict {
            code: ErrorCode::DeliveryProcessed,
            detail: e.to_string(),
        }
    }
}

impl From<EmailError> for ApiError {
    fn from(e: EmailError) -> Self {
        match e {
            EmailError::AlreadyClaimed => ApiError::Conflict {
                code: ErrorCode::EmailTaken,
                detail: e.to_string(),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } | ApiError::BadSignature { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Http { status, .. } => *status,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::PlanRequired { .. } | ApiError::PremiumRequired { .. } => {
                StatusCode::PAYMENT_REQUIRED
            }
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let problem = self.problem();
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::TooManyRequests { retry_after, .. }
            | ApiError::QuotaExceeded { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Unauthorized { .. } => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl ApiError {
    /// The problem+json body of this error (5xx causes are logged, not shown).
    pub fn problem(&self) -> serde_json::Value {
        let status = self.status_code();
        let detail = match self {
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause, "answering 503");
                "the service is temporarily unavailable; retry shortly".to_owned()
            }
            ApiError::Internal(cause) => {
                tracing::error!(cause, "answering 500");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Validation(errors) => Some(errors),
            _ => None,
        };
        let quota = match self {
            ApiError::QuotaExceeded {
                meter,
                limit,
                used,
                resets_at,
                ..
            } => Some(serde_json::json!({
                "meter": meter,
                "limit": limit,
                "used": used,
                "remaining": limit.saturating_sub(*used),
                "resets_at": resets_at,
            })),
            ApiError::PlanRequired { meter, tier } => Some(serde_json::json!({
                "meter": meter,
                "tier": tier,
                "limit": 0,
                "used": 0,
                "remaining": 0,
            })),
            ApiError::PremiumRequired { tier, .. } => Some(serde_json::json!({ "tier": tier })),
            _ => None,
        };
        let problem = Problem {
            r#type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code: self.code(),
            errors,
            quota,
        };
        serde_json::to_value(problem).unwrap_or_default()
    }
}
