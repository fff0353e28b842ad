//! `GET /v1/me/preferences` and `PATCH /v1/me/preferences`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use threadline_domain::account::{Account, AccountCommand, Preferences, limits};
use validator::Validate;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::state::AppState;
use crate::store::commands::CommandMeta;

/// The caller's preferences, or the defaults (the server's default model pinned).
pub fn current(state: &AppState, caller: &Caller) -> Preferences {
    caller
        .account
        .preferences
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| Preferences {
            pinned_models: vec![state.chat.models.default_id().to_owned()],
            ..Preferences::default()
        })
}

pub async fn get(state: web::Data<AppState>, caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(current(&state, &caller))
}

/// A partial update: absent fields stay; `null` clears an optional text.
#[derive(Debug, Deserialize, Validate)]
pub struct PreferencesPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::NICKNAME"))]
    pub nickname: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::BIOGRAPHY"))]
    pub biography: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::CUSTOM_INSTRUCTIONS"))]
    pub custom_instructions: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::MODEL_ID"))]
    pub default_model: Option<Option<String>>,
    #[validate(length(min = 1, max = "limits::PINNED_MODELS"))]
    pub pinned_models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::THEME"))]
    pub theme: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = "limits::THEME"))]
    pub mode: Option<Option<String>>,
}

/// Tells "absent" (outer `None`) from `null` (`Some(None)`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<PreferencesPatch>,
) -> Result<HttpResponse, ApiError> {
    if let Some(pinned) = &body.pinned_models
        && pinned
            .iter()
            .any(|m| m.trim().is_empty() || m.chars().count() as u64 > limits::MODEL_ID)
    {
        return Err(ApiError::invalid_field(
            "pinned_models",
            format!("model ids are 1-{} characters", limits::MODEL_ID),
        ));
    }
    let mut prefs = current(&state, &caller);
    let set = |field: &mut Option<String>, value: Option<Option<String>>| {
        if let Some(value) = value {
            *field = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        }
    };
    set(&mut prefs.nickname, body.nickname);
    set(&mut prefs.biography, body.biography);
    set(&mut prefs.custom_instructions, body.custom_instructions);
    set(&mut prefs.default_model, body.default_model);
    set(&mut prefs.theme, body.theme);
    set(&mut prefs.mode, body.mode);
    if let Some(pinned) = body.pinned_models {
        prefs.pinned_models = pinned;
    }
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    state
        .run::<Account>(
            caller.id(),
            AccountCommand::SetPreferences {
                preferences: prefs.clone(),
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    Ok(HttpResponse::Ok().json(prefs))
}
