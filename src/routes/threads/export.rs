//! `GET /v1/threads/{id}/export?format=json|markdown|csv`: one thread, to keep or to move.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::export;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    /// `json` (default; the whole tree), `markdown` or `csv` (the current path).
    pub format: Option<String>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<ExportParams>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let (content_type, extension, body) = match params.format.as_deref().unwrap_or("json") {
        "json" => (
            "application/json",
            "json",
            serde_json::to_string_pretty(&export::thread_json(&state, &thread).await?)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        "markdown" => (
            "text/markdown; charset=utf-8",
            "md",
            export::thread_markdown(&state, &thread).await?,
        ),
        "csv" => (
            "text/csv; charset=utf-8",
            "csv",
            export::thread_csv(&state, &thread).await?,
        ),
        other => {
            return Err(ApiError::invalid_field(
                "format",
                format!("unknown format {other:?}: use json, markdown or csv"),
            ));
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"thread-{}.{extension}\"", thread.id),
        ))
        .body(body))
}
