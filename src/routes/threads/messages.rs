//! `GET /v1/threads/{id}/messages`: the current path, newest page first, with a keyset
//! cursor; `DELETE /v1/threads/{id}/messages/{message_id}`: hide a message and its subtree.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use threadline_domain::values::MessageId;
use threadline_projections::messages;

use super::owned;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::request_id;
use crate::services::threads;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

#[derive(Debug, Deserialize)]
pub struct PageParams {
    /// `next_cursor` of the previous page: continue with older messages.
    pub before: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct MessagePage {
    /// Messages of the current path, oldest first within the page.
    pub data: Vec<serde_json::Value>,
    /// Pass as `before` for the page of older messages; null at the thread's start.
    pub next_cursor: Option<String>,
}

pub async fn page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let tree = messages::tree_of(&state.db, &thread.id).await?;
    let path = match params.before.as_deref() {
        None => tree.current_path(),
        Some(cursor) => {
            let before = decode_cursor(cursor)?;
            if !tree.messages.iter().any(|m| m.id == before) {
                return Err(invalid_cursor());
            }
            let mut path = messages::current_path_to(&tree.messages, Some(&before));
            path.pop();
            path
        }
    };
    let start = path.len().saturating_sub(limit);
    let next_cursor = (start > 0).then(|| encode_cursor(&path[start].message.id));
    let generations = messages::generations_of(&state.db, &thread.id).await?;
    let data = crate::services::thread_view::ui_messages(&path[start..], &generations);
    Ok(HttpResponse::Ok().json(MessagePage { data, next_cursor }))
}

fn encode_cursor(message_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("m:{message_id}"))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    let id = text.strip_prefix("m:").ok_or_else(invalid_cursor)?;
    let id = MessageId::parse(id).map_err(|_| invalid_cursor())?;
    Ok(id.as_str().to_owned())
}

fn invalid_cursor() -> ApiError {
    ApiError::BadRequest {
        code: ErrorCode::InvalidCursor,
        detail: "the cursor is not one this server issued".into(),
    }
}

pub async fn hide(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (thread_id, message_id) = path.into_inner();
    let thread = owned(&state, &caller, &thread_id).await?;
    let message = MessageId::parse(&message_id).map_err(|_| ApiError::NotFound("message"))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    threads::hide(&state, &thread, message.as_str(), &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor("msg-1")).unwrap(), "msg-1");
        for forged in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("x:msg"),
            &URL_SAFE_NO_PAD.encode("m:../x"),
        ] {
            assert!(decode_cursor(forged).is_err(), "{forged}");
        }
    }
}
