//! `GET /v1/search`: full-text search over the caller's thread titles and messages, best
//! first, each hit with a snippet and where its highlights are.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use threadline_projections::{rfc3339, search};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
/// Deepest result reachable by paging.
const MAX_OFFSET: i64 = 10_000;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct HitJson {
    pub thread_id: String,
    pub thread_title: Option<String>,
    /// The matching message; null when the title matched.
    pub message_id: Option<String>,
    pub snippet: String,
    /// `[start, end)` character ranges of `snippet` that matched.
    pub highlights: Vec<[usize; 2]>,
    pub at: String,
}

#[derive(Debug, Serialize)]
pub struct HitPage {
    pub data: Vec<HitJson>,
    pub next_cursor: Option<String>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let q = params.q.as_deref().unwrap_or_default().trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "q",
            "give 1-200 characters to search for",
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let offset = params
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .unwrap_or(0);
    let mut hits = search::search(&state.db, caller.id(), q, offset, limit + 1).await?;
    let next_cursor = (hits.len() as i64 > limit && offset + limit < MAX_OFFSET)
        .then(|| encode_cursor(offset + limit));
    hits.truncate(limit as usize);
    let data = hits
        .into_iter()
        .map(|h| HitJson {
            thread_id: h.thread_id,
            thread_title: h.title,
            message_id: h.message_id,
            snippet: h.snippet,
            highlights: h.highlights.into_iter().map(|(s, e)| [s, e]).collect(),
            at: rfc3339(h.at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(HitPage { data, next_cursor }))
}

fn encode_cursor(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::BadRequest {
        code: ErrorCode::InvalidCursor,
        detail: "the cursor is not one this server issued".into(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let offset = text
        .strip_prefix("o:")
        .and_then(crate::store::log::unsigned)
        .ok_or_else(invalid)?;
    if offset > MAX_OFFSET {
        return Err(invalid());
    }
    Ok(offset)
}
