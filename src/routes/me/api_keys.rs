//! `POST/GET /v1/me/api-keys` and `DELETE /v1/me/api-keys/{id}`: personal API keys, usable as
//! bearer tokens and metered like the account. A key is shown once; only its hash and a short
//! prefix are kept.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use threadline_domain::account::{Account, AccountCommand};
use threadline_domain::values::check_line;
use threadline_projections::{accounts, rfc3339};
use validator::Validate;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct CreateKey {
    #[validate(length(min = 1, max = 100))]
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct ApiKeyJson {
    pub id: String,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKeyJson,
    /// The secret: shown this once, never again.
    pub secret: String,
}

#[derive(Debug, Serialize)]
pub struct KeyList {
    pub data: Vec<ApiKeyJson>,
    pub next_cursor: Option<String>,
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let name = body.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            "the name must not be blank",
        ));
    }
    check_line(&name).map_err(|e| ApiError::invalid_field("name", e.0))?;
    let (secret, prefix) = auth::new_api_key();
    let key_id = uuid::Uuid::now_v7();
    let at = Utc::now();
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Account>(
            caller.id(),
            AccountCommand::CreateApiKey {
                key_id,
                name: name.clone(),
                prefix: prefix.clone(),
                key_hash: auth::hash_token(&secret),
                at,
            },
            &meta,
        )
        .await?;
    Ok(HttpResponse::Created().json(CreatedKey {
        key: ApiKeyJson {
            id: key_id.to_string(),
            name,
            prefix,
            created_at: rfc3339(at.timestamp_micros()),
        },
        secret,
    }))
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let data = accounts::api_keys_of(&state.db, caller.id())
        .await?
        .into_iter()
        .map(|k| ApiKeyJson {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeyList {
        data,
        next_cursor: None,
    }))
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let key_id = uuid::Uuid::parse_str(&path).map_err(|_| ApiError::NotFound("api key"))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Account>(
            caller.id(),
            AccountCommand::RevokeApiKey {
                key_id,
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
