//! Plans applied to the ledger: what a reply reserves before its provider is called, how the
//! reservation ends, purchased credits, and the tier a caller has now.
//!
//! A reply reserves the model's credits in the caller's current window of the `credits` meter
//! (the plan's limit travels in the command); when the window cannot cover it, the credits come
//! from the newest purchased-credit book instead. With a cost budget the reply also reserves an
//! estimate of its cost in micro-dollars (its prompt at the input price), settled at the actual
//! cost when it ends. Every reservation is one command on one bounded stream, so a send costs
//! the same on an account's first day and its thousandth.

use chrono::{DateTime, Utc};
use threadline_domain::catalog::Tier;
use threadline_domain::ledger::{CreditWindow, LedgerCommand, LedgerError};
use threadline_domain::plans::{self, Meter, PURCHASED, Window};
use threadline_projections::Db;
use threadline_projections::accounts::AccountRow;
use threadline_projections::usage;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::bus::{CommandBus, CommandError, CommandMeta};
use crate::store::log::Cursor;

pub use crate::ledger::{Charge, Reservation, close};

/// The caller's tier now: anonymous, pro while a subscription's paid period runs, else free.
pub fn tier_of(caller: &Caller) -> Tier {
    tier_at(&caller.account, Utc::now())
}

/// An account's tier at `now`.
pub fn tier_at(account: &AccountRow, now: DateTime<Utc>) -> Tier {
    if account.kind == "anonymous" {
        Tier::Anonymous
    } else if account
        .pro_until
        .is_some_and(|until| until > now.timestamp_micros())
    {
        Tier::Pro
    } else {
        Tier::Free
    }
}

/// The window a meter of `tier` is in at `now`, with its limit (`None`: not metered).
pub fn current_window(
    state: &AppState,
    tier: Tier,
    meter: Meter,
    now: DateTime<Utc>,
) -> Option<(Window, u64)> {
    let plans = &state.settings.plans;
    let rule = plans.plan(tier).rule(meter)?;
    Some((plans.window(rule.window, now), rule.limit?))
}

/// Reserves what a reply needs: its credits (window first, purchased credits after) and, with
/// a cost budget, its estimated cost. Either all of it is reserved or nothing is.
pub async fn reserve_reply(
    state: &AppState,
    caller: &Caller,
    generation_id: &str,
    credits: u64,
    cost_estimate: u64,
    meta: &CommandMeta,
) -> Result<Reservation, ApiError> {
    let now = Utc::now();
    let tier = tier_of(caller);
    let cost_estimate = cost_estimate.max(1);
    // A budget the projections already show spent refuses before anything is written (the
    // reservation below still decides races).
    spent_budget(state, caller.id(), tier, cost_estimate, now).await?;
    let mut reservation = Reservation::default();
    if credits > 0 {
        match reserve_in_window(
            state,
            caller.id(),
            tier,
            Meter::Credits,
            generation_id,
            credits,
            now,
            meta,
        )
        .await
        {
            Ok(charge) => reservation.charges.extend(charge),
            Err(Denied::Exhausted(quota)) => {
                match reserve_purchased(state, caller.id(), generation_id, credits, meta).await? {
                    Some(charge) => reservation.charges.push(charge),
                    None => return Err(quota),
                }
            }
            Err(Denied::Other(e)) => return Err(e),
        }
    }
    let cost = reserve_in_window(
        state,
        caller.id(),
        tier,
        Meter::CostMicros,
        generation_id,
        cost_estimate,
        now,
        meta,
    )
    .await;
    match cost {
        Ok(charge) => reservation.charges.extend(charge),
        Err(denied) => {
            close(&state.bus, &reservation, generation_id, None, meta).await;
            state.projector.wake();
            return Err(denied.into_api());
        }
    }
    state.projector.wake();
    Ok(reservation)
}

/// What a send or a tool run may still use, as the projections show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Remaining {
    /// Credits left in the current window; null when the credits meter is not metered.
    pub credits: Option<u64>,
    /// Purchased credits left (spent after the window's).
    pub purchased_credits: u64,
    /// When the credits window resets.
    pub resets_at: Option<String>,
}

/// Checks, without reserving anything, whether `credits` (and a run of `tool`) would be
/// reserved now: the same refusals a send would get (429 `quota_exceeded` naming the meter,
/// 402 `plan_required`), from the projections (a send racing this check decides for real).
pub async fn check(
    state: &AppState,
    caller: &Caller,
    credits: u64,
    tool: Option<Meter>,
) -> Result<Remaining, ApiError> {
    let now = Utc::now();
    let tier = tier_of(caller);
    let (_, purchased) = purchased_balance(&state.db, caller.id()).await?;
    let mut remaining = Remaining {
        credits: None,
        purchased_credits: purchased,
        resets_at: None,
    };
    if let Some((window, limit)) = current_window(state, tier, Meter::Credits, now) {
        let id = plans::window_id(caller.id(), Meter::Credits.as_str(), &window.key);
        let used = usage::window(&state.db, &id)
            .await?
            .map_or(0, |w| w.committed());
        let left = limit.saturating_sub(used);
        remaining.credits = Some(left);
        remaining.resets_at = Some(
            window
                .resets_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        if credits > left && credits > purchased {
            return Err(exhausted(Meter::Credits, limit, used, &window, now));
        }
    }
    spent_budget(state, caller.id(), tier, 1, now).await?;
    if let Some(meter) = tool
        && let Some((window, limit)) = current_window(state, tier, meter, now)
    {
        if limit == 0 {
            return Err(ApiError::PlanRequired {
                meter: meter.as_str(),
                tier: tier.as_str(),
            });
        }
        let id = plans::window_id(caller.id(), meter.as_str(), &window.key);
        let used = usage::window(&state.db, &id)
            .await?
            .map_or(0, |w| w.committed());
        if used >= limit {
            return Err(exhausted(meter, limit, used, &window, now));
        }
    }
    Ok(remaining)
}

/// A 429 when the cost budget, as the projections show it, cannot take `estimate` more.
async fn spent_budget(
    state: &AppState,
    account: &str,
    tier: Tier,
    estimate: u64,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some((window, limit)) = current_window(state, tier, Meter::CostMicros, now) else {
        return Ok(());
    };
    let id = plans::window_id(account, Meter::CostMicros.as_str(), &window.key);
    let used = usage::window(&state.db, &id)
        .await?
        .map_or(0, |w| w.committed());
    if used + estimate <= limit {
        return Ok(());
    }
    Err(exhausted(Meter::CostMicros, limit, used, &window, now))
}

/// The 429 for a used-up window: which meter, its limit and use, and when it resets.
fn exhausted(meter: Meter, limit: u64, used: u64, window: &Window, now: DateTime<Utc>) -> ApiError {
    ApiError::QuotaExceeded {
        meter: meter.as_str(),
        limit,
        used,
        resets_at: window
            .resets_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        retry_after: (window.resets_at - now).num_seconds().max(1) as u64,
    }
}

/// Reserves `amount` of a tool meter (web searches, research runs) for one run: 402 when the
/// plan has none of it, 429 when the window is used up.
pub async fn reserve_tool_run(
    state: &AppState,
    caller: &Caller,
    meter: Meter,
    run_id: &str,
    meta: &CommandMeta,
) -> Result<Reservation, ApiError> {
    let (tier, now) = (tier_of(caller), Utc::now());
    if let Some((_, 0)) = current_window(state, tier, meter, now) {
        return Err(ApiError::PlanRequired {
            meter: meter.as_str(),
            tier: tier.as_str(),
        });
    }
    let charge = reserve_in_window(state, caller.id(), tier, meter, run_id, 1, now, meta)
        .await
        .map_err(Denied::into_api)?;
    state.projector.wake();
    Ok(Reservation {
        charges: charge.into_iter().collect(),
    })
}

/// Why a reservation failed.
enum Denied {
    /// The window is used up: the 429 to answer.
    Exhausted(ApiError),
    Other(ApiError),
}

impl Denied {
    fn into_api(self) -> ApiError {
        match self {
            Denied::Exhausted(e) | Denied::Other(e) => e,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn reserve_in_window(
    state: &AppState,
    account: &str,
    tier: Tier,
    meter: Meter,
    generation_id: &str,
    amount: u64,
    now: DateTime<Utc>,
    meta: &CommandMeta,
) -> Result<Option<Charge>, Denied> {
    let Some((window, limit)) = current_window(state, tier, meter, now) else {
        return Ok(None);
    };
    let stream_id = plans::window_id(account, meter.as_str(), &window.key);
    let reserved = state
        .bus
        .execute::<CreditWindow>(
            &stream_id,
            LedgerCommand::Reserve {
                generation_id: generation_id.to_owned(),
                amount,
                limit: Some(limit),
                at: now,
            },
            meta,
        )
        .await;
    match reserved {
        Ok(_) => Ok(Some(Charge {
            stream_id,
            meter,
            amount,
        })),
        Err(CommandError::Rejected(LedgerError::Exhausted { used, limit })) => Err(
            Denied::Exhausted(exhausted(meter, limit, used, &window, now)),
        ),
        Err(e) => Err(Denied::Other(e.into())),
    }
}

/// Reserves `amount` purchased credits in the account's open book (`None`: not enough).
async fn reserve_purchased(
    state: &AppState,
    account: &str,
    generation_id: &str,
    amount: u64,
    meta: &CommandMeta,
) -> Result<Option<Charge>, ApiError> {
    let command = LedgerCommand::Reserve {
        generation_id: generation_id.to_owned(),
        amount,
        limit: None,
        at: Utc::now(),
    };
    match on_open_book(&state.db, &state.bus, account, command, meta).await {
        Ok((stream_id, _)) => Ok(Some(Charge {
            stream_id,
            meter: Meter::Credits,
            amount,
        })),
        Err(CommandError::Rejected(LedgerError::Exhausted { .. })) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Adds purchased or granted credits to an account (idempotent per `source` within a book)
/// and waits until the projections show them.
pub async fn add_purchased(
    state: &AppState,
    account: &str,
    source: &str,
    amount: u64,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let command = LedgerCommand::Add {
        source: source.to_owned(),
        amount,
        at: Utc::now(),
    };
    let (_, cursor) = on_open_book(&state.db, &state.bus, account, command, meta).await?;
    state.projector.wake();
    state.settle(cursor).await;
    Ok(())
}

/// Moves an anonymous account's purchased credits into the account it is linked into. The
/// balance is read from the projections after they caught up with the log; if a reply changed
/// it in between, the move is refused and tried again with a fresh read.
pub async fn move_purchased(
    state: &AppState,
    from: &str,
    to: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    for _ in 0..3 {
        let head = crate::store::log::head(&state.db).await?;
        state.settle(Some(head)).await;
        let (_, balance) = purchased_balance(&state.db, from).await?;
        if balance == 0 {
            return Ok(());
        }
        let out = LedgerCommand::MoveOut {
            to_account: to.to_owned(),
            amount: balance,
            at: Utc::now(),
        };
        match on_open_book(&state.db, &state.bus, from, out, meta).await {
            Ok(_) => return add_purchased(state, to, &format!("link:{from}"), balance, meta).await,
            Err(CommandError::Rejected(LedgerError::Exhausted { .. })) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict {
        code: crate::error::ErrorCode::ConcurrentChange,
        detail: "the purchased credits kept changing while the accounts were linked; retry".into(),
    })
}

/// The newest book's key and balance (the balance as the projections show it).
pub async fn purchased_balance(db: &Db, account: &str) -> Result<(String, u64), ApiError> {
    Ok(match usage::newest_book(db, account).await? {
        Some((key, row)) => (key, row.balance()),
        None => (plans::book_key(0), 0),
    })
}

/// Runs `command` on the account's open purchased-credit book, following closed books to the
/// next one (opening it with the closing balance). Returns the book's stream id.
async fn on_open_book(
    db: &Db,
    bus: &CommandBus,
    account: &str,
    command: LedgerCommand,
    meta: &CommandMeta,
) -> Result<(String, Option<Cursor>), CommandError<LedgerError>> {
    let newest = usage::newest_book(db, account)
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    let mut book = newest
        .and_then(|(key, _)| key.parse::<u64>().ok())
        .unwrap_or(0);
    // The projection may trail the log by a book or two; each step moves one book forward.
    for _ in 0..16 {
        let stream_id = plans::window_id(account, PURCHASED, &plans::book_key(book));
        match bus
            .execute::<CreditWindow>(&stream_id, command.clone(), meta)
            .await
        {
            Err(CommandError::Rejected(LedgerError::BookClosed { balance })) => {
                let open = LedgerCommand::OpenBook {
                    from_book: plans::book_key(book),
                    balance,
                    at: Utc::now(),
                };
                book += 1;
                let next = plans::window_id(account, PURCHASED, &plans::book_key(book));
                bus.execute::<CreditWindow>(&next, open, meta).await?;
            }
            Err(e) => return Err(e),
            Ok(cursor) => return Ok((stream_id, cursor)),
        }
    }
    Err(CommandError::Internal(format!(
        "no open purchased-credit book found for {account}"
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use threadline_domain::account::{Account, AccountCommand};
    use threadline_domain::values::AccountId;

    use super::*;
    use crate::chat::{ChatService, Signals};
    use crate::config::Settings;
    use crate::projector::Projector;
    use crate::providers::registry::ProviderRegistry;

    /// The state a server would hold, on SQLite in `dir`, without the HTTP part.
    async fn state(dir: &std::path::Path) -> AppState {
        let db = crate::store::connect(None, dir).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let projector = Projector::new(db.clone());
        projector.prepare().await.unwrap();
        let bus = CommandBus::new(db.clone());
        let chat = ChatService::new(
            db.clone(),
            bus.clone(),
            projector.clone(),
            ProviderRegistry::from_lookup(Duration::ZERO, |_| None, None),
            Signals::default(),
        );
        AppState {
            feed: crate::feed::FeedHub::new(db.clone()),
            db,
            bus,
            projector,
            settings: Arc::new(Settings::new("127.0.0.1:0", dir)),
            limits: crate::auth::limits::Limits::new(Default::default()),
            passwords: crate::auth::passwords::Passwords::new(1, Duration::from_secs(5)),
            links: Default::default(),
            chat,
            http: reqwest::Client::new(),
            jwt: None,
            files: crate::files::FileStore::open(&Default::default(), dir).unwrap(),
            file_digests: Default::default(),
            fetcher: crate::tools::fetch::Fetcher::new(Default::default()).unwrap(),
            search: None,
            mcp: Default::default(),
        }
    }

    async fn caller(state: &AppState, anonymous: bool, pro: bool) -> Caller {
        let id = AccountId::generate();
        let command = if anonymous {
            AccountCommand::CreateAnonymous { at: Utc::now() }
        } else {
            AccountCommand::CreateExternal {
                issuer: None,
                subject: id.to_string(),
                email: None,
                name: None,
                anonymous: false,
                at: Utc::now(),
            }
        };
        // No projector runs here: fold by hand instead of waiting for read-your-writes.
        state
            .bus
            .execute::<Account>(&id.to_string(), command, &CommandMeta::system())
            .await
            .unwrap();
        state.projector.catch_up_all().await.unwrap();
        let mut account = threadline_projections::accounts::account(&state.db, &id.to_string())
            .await
            .unwrap()
            .unwrap();
        if pro {
            account.pro_until = Some((Utc::now() + chrono::Duration::days(1)).timestamp_micros());
        }
        Caller {
            account,
            session_id: "test".into(),
            admin_claim: false,
        }
    }

    async fn run(
        state: &AppState,
        caller: &Caller,
        meter: Meter,
        i: usize,
    ) -> Result<(), ApiError> {
        reserve_tool_run(
            state,
            caller,
            meter,
            &format!("run-{i}"),
            &CommandMeta::system(),
        )
        .await
        .map(drop)
    }

    #[tokio::test]
    async fn tool_meters_are_exhausted_per_plan_and_gated_by_tier() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;

        // Web searches: 5 a day for anonymous and free accounts, then a 429 naming the meter.
        let anon = caller(&state, true, false).await;
        for i in 0..5 {
            run(&state, &anon, Meter::WebSearches, i).await.unwrap();
        }
        match run(&state, &anon, Meter::WebSearches, 5).await {
            Err(ApiError::QuotaExceeded {
                meter, limit, used, ..
            }) => assert_eq!((meter, limit, used), ("web_searches", 5, 5)),
            other => panic!("{other:?}"),
        }

        // Research runs: none below pro (a 402 plan gate), five a day on pro.
        let free = caller(&state, false, false).await;
        match run(&state, &free, Meter::ResearchRuns, 0).await {
            Err(ApiError::PlanRequired { meter, tier }) => {
                assert_eq!((meter, tier), ("research_runs", "free"));
            }
            other => panic!("{other:?}"),
        }
        let pro = caller(&state, false, true).await;
        for i in 0..5 {
            run(&state, &pro, Meter::ResearchRuns, i).await.unwrap();
        }
        assert!(matches!(
            run(&state, &pro, Meter::ResearchRuns, 5).await,
            Err(ApiError::QuotaExceeded {
                meter: "research_runs",
                ..
            })
        ));
        // A released run gives its unit back.
        let window = current_window(&state, Tier::Pro, Meter::ResearchRuns, Utc::now())
            .unwrap()
            .0;
        let reservation = Reservation {
            charges: vec![Charge {
                stream_id: plans::window_id(pro.id(), "research_runs", &window.key),
                meter: Meter::ResearchRuns,
                amount: 1,
            }],
        };
        close(
            &state.bus,
            &reservation,
            "run-4",
            None,
            &CommandMeta::system(),
        )
        .await;
        run(&state, &pro, Meter::ResearchRuns, 6).await.unwrap();
    }
}
