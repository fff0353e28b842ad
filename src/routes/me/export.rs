//! `GET /v1/me/export`: everything the account owns, as a zip archive streamed in constant
//! memory (see `services::export`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::export;
use crate::state::AppState;

pub async fn handle(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let profile = serde_json::to_value(super::get::me(&state, &caller))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let preferences =
        serde_json::to_value(crate::services::accounts::preferences_of(&state, &caller))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let date = chrono::Utc::now().format("%Y-%m-%d");
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/zip"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"threadline-export-{date}.zip\""),
        ))
        .streaming(export::account_zip(
            state.clone(),
            caller.id().to_owned(),
            profile,
            preferences,
        )))
}
