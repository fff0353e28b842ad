//! `GET /v1/me/preferences` and `PATCH /v1/me/preferences`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use threadline_domain::account::{Account, AccountCommand, limits};
use threadline_domain::values::{check_line, check_prose};
use validator::Validate;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::services::accounts::preferences_of;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

pub async fn get(state: web::Data<AppState>, caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(preferences_of(&state, &caller))
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

impl PreferencesPatch {
    /// One-line fields hold no control characters, prose fields none but line breaks, and
    /// pinned models are listed once.
    fn check(&self) -> Result<(), ApiError> {
        let given = |v: &Option<Option<String>>| v.clone().flatten();
        for (field, value) in [
            ("nickname", given(&self.nickname)),
            ("theme", given(&self.theme)),
            ("mode", given(&self.mode)),
            ("default_model", given(&self.default_model)),
        ] {
            if let Some(value) = value {
                check_line(&value).map_err(|e| ApiError::invalid_field(field, e.0))?;
            }
        }
        for (field, value) in [
            ("biography", given(&self.biography)),
            ("custom_instructions", given(&self.custom_instructions)),
        ] {
            if let Some(value) = value {
                check_prose(&value).map_err(|e| ApiError::invalid_field(field, e.0))?;
            }
        }
        if let Some(pinned) = &self.pinned_models {
            let mut seen = std::collections::HashSet::new();
            if let Some(twice) = pinned.iter().find(|m| !seen.insert(m.as_str())) {
                return Err(ApiError::invalid_field(
                    "pinned_models",
                    format!("{twice:?} is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// The model ids the patch names, with their fields.
    fn models(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let pinned = self
            .pinned_models
            .iter()
            .flatten()
            .map(|m| ("pinned_models", m));
        let default = self
            .default_model
            .iter()
            .flatten()
            .map(|m| ("default_model", m));
        pinned
            .chain(default)
            .map(|(field, m)| (field, m.trim()))
            .filter(|(field, m)| *field == "pinned_models" || !m.is_empty())
    }
}

/// A model id of the catalog (or, with direct models allowed, one a provider serves); 422
/// naming the field otherwise.
async fn known_model(state: &AppState, field: &str, id: &str) -> Result<(), ApiError> {
    if threadline_projections::catalog::get(&state.db, id)
        .await?
        .is_some()
        || (state.settings.allow_direct_models && state.chat.registry.direct(id).is_some())
    {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        field,
        format!("unknown model {id:?}"),
    ))
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
    body.check()?;
    for (field, model) in body.models() {
        known_model(&state, field, model).await?;
    }
    let mut prefs = preferences_of(&state, &caller);
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
