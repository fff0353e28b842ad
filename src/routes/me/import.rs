//! `POST /v1/me/import`: conversations exported by ChatGPT, LibreChat, Open WebUI, Chatbot UI
//! or Threadline (a thread, or the account export's zip) become the caller's threads. The file
//! comes as the raw body (`application/json`, `application/zip` or
//! `application/octet-stream`) or as the `file` field (or the first with a file name) of a
//! `multipart/form-data` upload. Re-importing a
//! file creates no duplicates; each conversation's outcome is in the report.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

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
        crate::extract::multipart_file(&req, payload, IMPORT_LIMIT)
            .await?
            .1
            .to_vec()
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
