//! `POST /v1/threads`: create an empty thread, with a client-chosen id if given.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use threadline_domain::thread::{Thread, ThreadCommand};
use threadline_domain::values::{AccountId, ThreadId, Title};
use validator::Validate;

use super::{ThreadJson, owned};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct CreateThread {
    #[validate(length(min = 1, max = 64))]
    pub id: Option<String>,
    #[validate(length(min = 1, max = 200))]
    pub title: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateThread>,
) -> Result<HttpResponse, ApiError> {
    let id = match body.id.as_deref() {
        Some(id) => ThreadId::parse(id).map_err(|e| ApiError::invalid_field("id", e.0))?,
        None => ThreadId::generate(),
    };
    let title = body
        .title
        .as_deref()
        .map(Title::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("title", e.0))?;
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Thread>(
            id.as_str(),
            ThreadCommand::Create {
                owner,
                title,
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    let thread = owned(&state, &caller, id.as_str()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/threads/{}", id.as_str())))
        .json(ThreadJson::from(thread)))
}
