//! `POST /v1/me/import`: conversations exported by ChatGPT, LibreChat, Open WebUI, Chatbot UI
//! or Threadline (a thread, or the account export's zip) become the caller's threads. The file
//! comes as the raw body (`application/json`, `application/zip` or
//! `application/octet-stream`) or as the first file of a `multipart/form-data` upload. Re-importing a
//! file creates no duplicates; each conversation's outcome is in the report.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures::StreamExt;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{read_body, request_id};
use crate::services::import;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// Largest file accepted (a 50 MB ChatGPT export fits).
pub const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = if content_type.starts_with("multipart/form-data") {
        let mut payload = payload.into_inner();
        let multipart = Multipart::from_request(&req, &mut payload)
            .await
            .map_err(|e| ApiError::invalid_field("file", format!("not a multipart upload: {e}")))?;
        first_file(multipart).await?
    } else if [
        "application/json",
        "application/zip",
        "application/octet-stream",
    ]
    .iter()
    .any(|t| content_type.starts_with(t))
    {
        read_body(payload, IMPORT_LIMIT).await?.to_vec()
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let report = import::import(&state, &caller, bytes, &meta).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The bytes of the upload's first part (at most [`IMPORT_LIMIT`]).
async fn first_file(mut multipart: Multipart) -> Result<Vec<u8>, ApiError> {
    let Some(field) = multipart.next().await else {
        return Err(ApiError::invalid_field("file", "the upload holds no file"));
    };
    let mut field =
        field.map_err(|e| ApiError::invalid_field("file", format!("unreadable upload: {e}")))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_multipart::MultipartError::Payload(p) => crate::extract::body_error(&p),
            other => ApiError::invalid_field("file", format!("unreadable upload: {other}")),
        })?;
        if bytes.len() + chunk.len() > IMPORT_LIMIT {
            return Err(ApiError::PayloadTooLarge {
                limit: IMPORT_LIMIT,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
