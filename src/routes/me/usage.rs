//! `GET /v1/me/usage`: per meter, the limit, use and reset of the current window, and the
//! newest ledger lines.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use threadline_domain::plans;
use threadline_projections::{rfc3339, usage};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::credits::{self, tier_of};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Meter {
    /// `credits`, `web_searches`, `research_runs` or `cost_micros`.
    pub meter: &'static str,
    /// `day` (calendar day in the plans' time zone) or `{N}h` (a bucket of N hours).
    pub window: String,
    pub window_key: String,
    pub limit: u64,
    /// Settled use plus open reservations.
    pub used: u64,
    /// Of `used`, what runs still going have reserved.
    pub reserved: u64,
    pub remaining: u64,
    pub resets_at: String,
}

#[derive(Debug, Serialize)]
pub struct LedgerLine {
    pub at: String,
    pub meter: String,
    pub window_key: String,
    /// `reserved`, `settled`, `released`, `carried`, `added`, `moved_out`, `book_opened` or
    /// `book_closed`.
    pub kind: String,
    pub amount: i64,
    /// The reply of a reservation; the order, grant or link of added credits; the other
    /// account of a carry or move.
    pub generation_id: String,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    /// `anonymous`, `free` or `pro`.
    pub tier: threadline_domain::catalog::Tier,
    /// The metered meters of the caller's plan (an unmetered one is left out).
    pub meters: Vec<Meter>,
    /// Bought credits, spent after the credits window's quota; they never expire.
    pub purchased_credits: u64,
    pub ledger: Vec<LedgerLine>,
}

pub async fn handle(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tier = tier_of(&caller);
    let now = Utc::now();
    let plan = state.settings.plans.plan(tier);
    let mut meters = Vec::new();
    for meter in plans::Meter::ALL {
        let (Some(rule), Some((window, limit))) = (
            plan.rule(meter),
            credits::current_window(&state, tier, meter, now),
        ) else {
            continue;
        };
        let id = plans::window_id(caller.id(), meter.as_str(), &window.key);
        let row = usage::window(&state.db, &id).await?;
        let used = row.as_ref().map_or(0, usage::WindowRow::committed);
        meters.push(Meter {
            meter: meter.as_str(),
            window: rule.window.to_string(),
            window_key: window.key,
            limit,
            used,
            reserved: row.map_or(0, |r| r.reserved.max(0) as u64),
            remaining: limit.saturating_sub(used),
            resets_at: window
                .resets_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    let (_, purchased_credits) = credits::purchased_balance(&state.db, caller.id()).await?;
    let lines = usage::lines_of(&state.db, caller.id(), 50).await?;
    Ok(HttpResponse::Ok().json(Usage {
        tier,
        meters,
        purchased_credits,
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
