//! Request extractors: the caller ([`caller`]), validated JSON bodies, query strings and
//! paths whose failures are problem+json, whole bodies, the client's address and the request id.

pub mod caller;

pub use caller::MaybeCaller;

use std::collections::BTreeMap;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::error::ApiError;

/// Largest JSON body accepted by the resource routes.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A JSON body that deserialized and passed its `validator` rules.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    // Body errors were already turned into problem+json by `json_config`'s handler.
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(value) = json.await?;
            value.validate().map_err(validation_error)?;
            Ok(ValidJson(value))
        })
    }
}

/// Maps a JSON body error of actix to problem+json.
pub fn json_error(e: JsonPayloadError) -> ApiError {
    match &e {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit: *limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Payload(e) => body_error(e),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::Validation(BTreeMap::from([("body".to_owned(), vec![e.to_string()])]))
        }
        _ => ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidJson,
            detail: format!("the body is not valid JSON: {e}"),
        },
    }
}

/// Maps a failure to read the body: its deadline passed (408), it grew too large (413), or
/// the connection broke (400 `invalid_body`).
pub fn body_error(e: &actix_web::error::PayloadError) -> ApiError {
    use actix_web::error::PayloadError;
    match e {
        e if is_timeout(e) => ApiError::RequestTimeout,
        PayloadError::Overflow => {
            ApiError::from_status(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidBody,
            detail: format!("the body could not be read: {other}"),
        },
    }
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    use futures::StreamExt;
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// The name and bytes of the `file` field (the first field with a file name when none is
/// called `file`) of a `multipart/form-data` request, at most `limit` bytes.
pub async fn multipart_file(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(String, web::Bytes), ApiError> {
    use futures::{StreamExt, TryStreamExt};
    let mut payload = payload.into_inner();
    let mut multipart = actix_multipart::Multipart::from_request(req, &mut payload)
        .await
        .map_err(|e| ApiError::invalid_field("file", format!("not a multipart upload: {e}")))?;
    let unreadable = |e: actix_multipart::MultipartError| match e {
        actix_multipart::MultipartError::Payload(p) => body_error(&p),
        other => ApiError::invalid_field("file", format!("unreadable upload: {other}")),
    };
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(unreadable)?;
        let filename = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let named_file = field.name() == Some("file");
        let Some(filename) = filename.or_else(|| named_file.then(|| "file".to_owned())) else {
            // Another form field: read past it.
            while field.try_next().await.map_err(unreadable)?.is_some() {}
            continue;
        };
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = field.try_next().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok((filename, bytes.freeze()));
    }
    Err(ApiError::invalid_field(
        "file",
        "the upload holds no file (send it in a field named `file`)",
    ))
}

/// Maps `validator`'s errors to a 422 naming each field.
pub fn validation_error(errors: validator::ValidationErrors) -> ApiError {
    let fields = errors
        .field_errors()
        .into_iter()
        .map(|(field, errs)| {
            let messages = errs
                .iter()
                .map(|e| {
                    e.message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| describe(e))
                })
                .collect();
            (field.to_string(), messages)
        })
        .collect();
    ApiError::Validation(fields)
}

fn describe(e: &validator::ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("length must be between {min} and {max}"),
            (None, Some(max)) => format!("length must be at most {max}"),
            (Some(min), None) => format!("length must be at least {min}"),
            _ => "invalid length".into(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            _ => "out of range".into(),
        },
        code => format!("invalid ({code})"),
    }
}

/// actix's JSON config for the app: size limit and problem+json errors.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|e, _| json_error(e).into())
}

/// actix's query-string config: problem+json errors.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| {
        let detail = match &e {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidQuery,
            detail,
        }
        .into()
    })
}

/// actix's path config: problem+json errors.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, _| {
        let detail = match &e {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidPath,
            detail,
        }
        .into()
    })
}

/// The request's id: the client's `x-request-id` when it is sane, else a fresh UUID.
pub fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The client's address: the TCP peer, unless the peer is one of the `trusted` proxies; then
/// the nearest address in `X-Forwarded-For` (read from the right) that is not a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Some(client);
        };
        for hop in value.split(',').rev() {
            match hop.trim().parse::<std::net::IpAddr>() {
                Ok(ip) if is_trusted(&ip) => client = ip,
                Ok(ip) => return Some(ip),
                // An unreadable hop: what is left of it cannot be trusted.
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}

/// The error a body stream ends with when its deadline passed (see
/// [`crate::middleware::body_deadline`]).
pub fn timed_out() -> actix_web::error::PayloadError {
    actix_web::error::PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the request body did not arrive in time",
    ))
}

/// Whether a body error is the deadline's (the request is then a 408).
pub fn is_timeout(e: &actix_web::error::PayloadError) -> bool {
    matches!(e, actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}
