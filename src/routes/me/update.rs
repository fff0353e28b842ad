//! `PATCH /v1/me`: the caller's display name and profile picture.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use threadline_domain::account::{Account, AccountCommand};
use threadline_domain::values::DisplayName;
use validator::Validate;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// Longest profile picture URL.
const MAX_IMAGE_URL: usize = 2048;

/// A partial update: absent fields stay; `null` clears.
#[derive(Debug, Deserialize, Validate)]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub image_url: Option<Option<String>>,
}

fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An `https` (or `http`) URL of at most 2048 characters.
fn image_url(url: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid_field(
            "image_url",
            "must be an http(s) URL of at most 2048 characters",
        )
    };
    if url.len() > MAX_IMAGE_URL || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid());
    }
    Ok(parsed.to_string())
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<ProfilePatch>,
) -> Result<HttpResponse, ApiError> {
    if body.name.is_none() && body.image_url.is_none() {
        return Err(ApiError::invalid_field("body", "give name or image_url"));
    }
    let name = body
        .name
        .map(|n| n.as_deref().map(DisplayName::parse).transpose())
        .transpose()
        .map_err(|e| ApiError::invalid_field("name", e.0))?;
    let image = body
        .image_url
        .map(|u| u.as_deref().map(image_url).transpose())
        .transpose()?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Account>(
            caller.id(),
            AccountCommand::UpdateProfile {
                name,
                image_url: image,
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    let account = threadline_projections::accounts::account(&state.db, caller.id())
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    Ok(HttpResponse::Ok().json(super::get::me(&state, &Caller { account, ..caller })))
}
