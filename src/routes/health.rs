//! Operations: liveness, readiness and the OpenAPI document.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::store::ping(&state.db)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": state.db.backend_name()})))
}

/// The OpenAPI document of `api-spec/openapi.yaml`, built into the binary.
pub const OPENAPI_YAML: &str = include_str!("../../api-spec/openapi.yaml");

/// `GET /openapi.json`: the OpenAPI document as JSON.
pub async fn openapi() -> Result<HttpResponse, ApiError> {
    static DOC: OnceLock<Result<serde_json::Value, String>> = OnceLock::new();
    let doc = DOC.get_or_init(|| serde_yaml_ng::from_str(OPENAPI_YAML).map_err(|e| e.to_string()));
    match doc {
        Ok(doc) => Ok(HttpResponse::Ok().json(doc)),
        Err(e) => Err(ApiError::Internal(format!(
            "openapi.yaml does not parse: {e}"
        ))),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.chat.metrics.render())
}
