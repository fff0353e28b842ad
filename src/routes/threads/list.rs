//! `GET /v1/threads`: the caller's threads, newest activity first, with a keyset cursor.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use threadline_projections::threads::{self, ListQuery};

use super::ThreadJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// `true` lists only archived threads; the default lists the others.
    pub archived: Option<bool>,
    /// Only pinned (`true`) or unpinned (`false`) threads.
    pub pinned: Option<bool>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// Only threads whose title or messages match (the same matching as `GET /v1/search`).
    pub q: Option<String>,
}

/// Most threads a `q` filter considers.
const MAX_MATCHING: i64 = 1_000;

#[derive(Debug, Serialize)]
pub struct ThreadPage {
    pub data: Vec<ThreadJson>,
    pub next_cursor: Option<String>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let only = match params.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) if q.chars().count() > 200 => {
            return Err(ApiError::invalid_field("q", "at most 200 characters"));
        }
        Some(q) => Some(
            threadline_projections::search::matching_threads(
                &state.db,
                caller.id(),
                q,
                MAX_MATCHING,
            )
            .await?,
        ),
        None => None,
    };
    let query = ListQuery {
        only,
        archived: params.archived.unwrap_or(false),
        pinned: params.pinned,
        after,
        limit: limit + 1,
    };
    let mut rows = threads::list(&state.db, caller.id(), &query).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|t| encode_cursor(t.last_activity_at, &t.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(ThreadPage {
        data: rows.into_iter().map(ThreadJson::from).collect(),
        next_cursor,
    }))
}

fn encode_cursor(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let invalid = || ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidCursor,
        detail: "the cursor is not one this server issued".into(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once('.').ok_or_else(invalid)?;
    let at = crate::store::log::unsigned(at).ok_or_else(invalid)?;
    let id = threadline_domain::values::ThreadId::parse(id).map_err(|_| invalid())?;
    Ok((at, id.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips() {
        let c = encode_cursor(1_700_000_000_123_456, "abc-1_2");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (1_700_000_000_123_456, "abc-1_2".into())
        );
    }

    #[test]
    fn a_forged_cursor_is_a_bad_request() {
        let forged = [
            URL_SAFE_NO_PAD.encode("-5.abc"),
            URL_SAFE_NO_PAD.encode("5.../x"),
            URL_SAFE_NO_PAD.encode("5."),
        ];
        for bad in ["!!!", "bm9kb3Q", ""]
            .into_iter()
            .chain(forged.iter().map(String::as_str))
        {
            assert!(
                matches!(decode_cursor(bad), Err(ApiError::BadRequest { .. })),
                "{bad}"
            );
        }
    }
}
