//! `PATCH /v1/threads/{id}`: rename, archive/unarchive, pin/unpin.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use threadline_domain::thread::{Thread, ThreadCommand, TitleSource};
use threadline_domain::values::Title;
use validator::Validate;

use super::{ThreadJson, owned};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct UpdateThread {
    #[validate(length(min = 1, max = 200))]
    pub title: Option<String>,
    pub archived: Option<bool>,
    pub pinned: Option<bool>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ValidJson(body): ValidJson<UpdateThread>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let at = Utc::now();
    let mut commands = Vec::new();
    if let Some(title) = body.title.as_deref() {
        let title = Title::parse(title).map_err(|e| ApiError::invalid_field("title", e.0))?;
        commands.push(ThreadCommand::Rename {
            title,
            source: TitleSource::User,
            at,
        });
    }
    if let Some(archived) = body.archived {
        commands.push(ThreadCommand::SetArchived { archived, at });
    }
    if let Some(pinned) = body.pinned {
        commands.push(ThreadCommand::SetPinned { pinned, at });
    }
    if commands.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one of title, archived, pinned",
        ));
    }
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let mut cursor = None;
    for command in commands {
        cursor = state
            .send::<Thread>(&thread.id, command, &meta)
            .await?
            .or(cursor);
    }
    state.settle(cursor).await;
    let thread = owned(&state, &caller, &thread.id).await?;
    Ok(HttpResponse::Ok().json(ThreadJson::from(thread)))
}
