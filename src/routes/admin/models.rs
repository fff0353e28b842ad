//! `GET /v1/admin/models/{id}` and `PUT /v1/admin/models/{id}`: read and change a catalog entry.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use threadline_domain::catalog::{CatalogCommand, CatalogModel, ModelSpec};
use threadline_projections::catalog;

use super::require_admin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Serialize)]
pub struct CatalogEntry {
    pub id: String,
    #[serde(flatten)]
    pub spec: ModelSpec,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let spec = catalog::get(&state.db, &path)
        .await?
        .ok_or(ApiError::NotFound("model"))?;
    Ok(HttpResponse::Ok().json(CatalogEntry {
        id: path.into_inner(),
        spec,
    }))
}

pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<ModelSpec>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ApiError::invalid_field(
            "id",
            "1-128 characters of letters, digits and -_.:/",
        ));
    }
    let spec = body.into_inner();
    if spec.provider.trim().is_empty() || spec.upstream.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "provider",
            "provider and upstream must not be empty",
        ));
    }
    if spec.credits > 10_000 {
        return Err(ApiError::invalid_field("credits", "at most 10000"));
    }
    let meta = CommandMeta::for_admin(&request_id(&req), caller.id());
    state
        .run::<CatalogModel>(
            &id,
            CatalogCommand::Define {
                spec: spec.clone(),
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    Ok(HttpResponse::Ok().json(CatalogEntry { id, spec }))
}
