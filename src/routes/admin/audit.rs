//! `GET /v1/admin/audit?from&to&actor&cursor&limit`: the admin audit trail, newest first —
//! every catalog change, credit grant and MCP server change an admin made, with the admin and
//! the request id.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use threadline_projections::{accounts, audit, rfc3339};

use super::require_admin;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// From this instant (RFC 3339) or UTC day (`YYYY-MM-DD`), included.
    pub from: Option<String>,
    /// Until this instant (RFC 3339, excluded) or UTC day (`YYYY-MM-DD`, included).
    pub to: Option<String>,
    /// Only this admin's actions (an account id).
    pub actor: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

/// One admin action.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    /// Its event's log position.
    pub position: i64,
    pub at: String,
    pub actor: Option<String>,
    /// The admin's email, when the actor is an account that has one.
    pub actor_email: Option<String>,
    pub request_id: Option<String>,
    pub event_type: String,
    pub target: Target,
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// The bound `value` names, in microseconds: an instant as given, or a day's start (`from`)
/// or the next day's start (`to`, so the day is included).
fn bound(field: &str, value: &str, end: bool) -> Result<i64, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc).timestamp_micros());
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_field(field, "expected an RFC 3339 time or a day as YYYY-MM-DD")
    })?;
    let day = if end {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    Ok(day
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_micros())
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let from = params
        .from
        .as_deref()
        .map(|v| bound("from", v, false))
        .transpose()?;
    let to = params
        .to
        .as_deref()
        .map(|v| bound("to", v, true))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::invalid_field("from", "must be before `to`"));
    }
    let query = audit::Query {
        from,
        to,
        actor: params.actor.clone().filter(|a| !a.is_empty()),
        before: params.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: limit + 1,
    };
    let mut rows = audit::list(&state.db, &query).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|e| encode_cursor(e.at, e.position))
    } else {
        None
    };
    let mut emails = std::collections::HashMap::new();
    let mut data = Vec::with_capacity(rows.len());
    for e in rows {
        let actor_email = match &e.actor {
            Some(actor) => {
                if !emails.contains_key(actor) {
                    let email = accounts::account(&state.db, actor)
                        .await?
                        .and_then(|a| a.email);
                    emails.insert(actor.clone(), email);
                }
                emails.get(actor).cloned().flatten()
            }
            None => None,
        };
        data.push(AuditEntry {
            position: e.position,
            at: rfc3339(e.at),
            actor: e.actor,
            actor_email,
            request_id: e.request_id,
            event_type: e.event_type,
            target: Target {
                kind: e.target_type,
                id: e.target_id,
            },
            details: e.details,
        });
    }
    Ok(HttpResponse::Ok().json(AuditPage { data, next_cursor }))
}

fn encode_cursor(at: i64, position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}.{position}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, i64), ApiError> {
    let invalid = || ApiError::BadRequest {
        code: ErrorCode::InvalidCursor,
        detail: "the cursor is not one this server issued".into(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, position) = text.split_once('.').ok_or_else(invalid)?;
    let at = crate::store::log::unsigned(at).ok_or_else(invalid)?;
    let position = crate::store::log::unsigned(position).ok_or_else(invalid)?;
    Ok((at, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let c = encode_cursor(1_700_000_000_123_456, 42);
        assert_eq!(decode_cursor(&c).unwrap(), (1_700_000_000_123_456, 42));
        assert!(decode_cursor("bm9wZQ").is_err());
    }

    #[test]
    fn a_day_as_to_includes_the_whole_day() {
        let from = bound("from", "2026-03-01", false).unwrap();
        let to = bound("to", "2026-03-01", true).unwrap();
        assert_eq!(to - from, 86_400_000_000);
        assert!(bound("to", "yesterday", true).is_err());
    }
}
