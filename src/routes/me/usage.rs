//! `GET /v1/me/usage`: per meter, the limit, use and reset of the current window, and the
//! newest ledger lines.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use threadline_domain::ledger;
use threadline_projections::{rfc3339, usage};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::chat::tier_of;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Meter {
    pub meter: &'static str,
    /// `day` (calendar day, UTC).
    pub window: &'static str,
    pub window_key: String,
    pub limit: u64,
    /// Settled use plus open reservations.
    pub used: u64,
    /// Of `used`, what replies still streaming have reserved.
    pub reserved: u64,
    pub remaining: u64,
    pub resets_at: String,
}

#[derive(Debug, Serialize)]
pub struct LedgerLine {
    pub at: String,
    pub meter: String,
    pub window_key: String,
    /// `reserved`, `settled` or `released`.
    pub kind: String,
    pub amount: i64,
    pub generation_id: String,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    /// `anonymous`, `free` or `pro`.
    pub tier: threadline_domain::catalog::Tier,
    pub meters: Vec<Meter>,
    /// Bought credits, spent after the window's quota (none can be bought yet).
    pub purchased_credits: u64,
    pub ledger: Vec<LedgerLine>,
}

pub async fn handle(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tier = tier_of(&caller);
    let (key, resets_at) = ledger::day_window(Utc::now());
    let limit = ledger::daily_credits(tier);
    let window = usage::window(&state.db, &ledger::window_id(caller.id(), "credits", &key)).await?;
    let (settled, reserved) =
        window.map_or((0, 0), |w| (w.used.max(0) as u64, w.reserved.max(0) as u64));
    let used = settled + reserved;
    let lines = usage::lines_of(&state.db, caller.id(), 50).await?;
    Ok(HttpResponse::Ok().json(Usage {
        tier,
        meters: vec![Meter {
            meter: "credits",
            window: "day",
            window_key: key,
            limit,
            used,
            reserved,
            remaining: limit.saturating_sub(used),
            resets_at: resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }],
        purchased_credits: 0,
        ledger: lines
            .into_iter()
            .map(|l| LedgerLine {
                at: rfc3339(l.at),
                meter: l.meter,
                window_key: l.window_key,
                kind: l.kind,
                amount: l.amount,
                generation_id: l.generation_id,
            })
            .collect(),
    }))
}
