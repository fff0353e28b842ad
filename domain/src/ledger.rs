//! Credits as a ledger: one `CreditWindow` stream per account, meter and window (for example
//! `credits` on 2026-11-25), so a command's cost is bounded by one window's activity and never
//! grows with the account's age (SPEC §2 fact 3).
//!
//! A send reserves the model's credits before the provider is called; the end of the reply
//! settles them (completed, or stopped/failed after its first token) or releases them (failed
//! or stopped before its first token). The window's limit arrives in the command (the plan
//! policy is outside the aggregate); two requests racing for the last credit are decided by the
//! event store's optimistic concurrency on this stream: exactly one wins.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;
use crate::catalog::Tier;

/// Credits a plan grants per calendar day (UTC), by tier (SPEC §7 defaults).
pub fn daily_credits(tier: Tier) -> u64 {
    match tier {
        Tier::Anonymous => 10,
        Tier::Free => 20,
        Tier::Pro => 200,
    }
}

/// A day window: its key (`2026-11-25`) and when it resets.
pub fn day_window(at: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let day = at.date_naive();
    let next = day
        .checked_add_days(Days::new(1))
        .unwrap_or(day)
        .and_time(NaiveTime::MIN)
        .and_utc();
    (day.format("%Y-%m-%d").to_string(), next)
}

/// The stream id of an account's window of a meter.
pub fn window_id(account: &str, meter: &str, key: &str) -> String {
    format!("{account}:{meter}:{key}")
}

/// Commands of a credit window.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerCommand {
    Reserve {
        generation_id: String,
        amount: u64,
        /// The plan's limit for this window.
        limit: u64,
        at: DateTime<Utc>,
    },
    Settle {
        generation_id: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    Release {
        generation_id: String,
        at: DateTime<Utc>,
    },
    /// Carries an anonymous account's use of the same window into this one when it is linked
    /// (signing up never resets a quota).
    Carry {
        from_account: String,
        amount: u64,
        at: DateTime<Utc>,
    },
}

/// Events of a credit window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerEvent {
    CreditsReserved {
        generation_id: String,
        amount: u64,
        limit: u64,
        at: DateTime<Utc>,
    },
    CreditsSettled {
        generation_id: String,
        reserved: u64,
        amount: u64,
        at: DateTime<Utc>,
    },
    CreditsReleased {
        generation_id: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    CreditsCarried {
        from_account: String,
        amount: u64,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        match self {
            LedgerEvent::CreditsReserved { .. } => "CreditsReserved",
            LedgerEvent::CreditsSettled { .. } => "CreditsSettled",
            LedgerEvent::CreditsReleased { .. } => "CreditsReleased",
            LedgerEvent::CreditsCarried { .. } => "CreditsCarried",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Why a ledger command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Not enough left in the window.
    #[error("the window's credits are used up ({used} of {limit})")]
    Exhausted { used: u64, limit: u64 },
    /// Nothing is reserved for this generation (already settled or released).
    #[error("nothing is reserved for this reply")]
    NotReserved,
}

/// A window's balance: settled use and open reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreditWindow {
    used: u64,
    reserved: BTreeMap<String, u64>,
}

impl CreditWindow {
    /// Settled plus reserved credits.
    pub fn committed(&self) -> u64 {
        self.used + self.reserved.values().sum::<u64>()
    }
}

impl Aggregate for CreditWindow {
    const TYPE: &'static str = "CreditWindow";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = LedgerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            LedgerCommand::Reserve {
                generation_id,
                amount,
                limit,
                at,
            } => {
                if self.reserved.contains_key(&generation_id) {
                    return Ok(()); // a retried request reserves once
                }
                if self.committed() + amount > limit {
                    return Err(LedgerError::Exhausted {
                        used: self.committed(),
                        limit,
                    });
                }
                LedgerEvent::CreditsReserved {
                    generation_id,
                    amount,
                    limit,
                    at,
                }
            }
            LedgerCommand::Settle {
                generation_id,
                amount,
                at,
            } => {
                let Some(reserved) = self.reserved.get(&generation_id) else {
                    return Err(LedgerError::NotReserved);
                };
                LedgerEvent::CreditsSettled {
                    reserved: *reserved,
                    generation_id,
                    amount,
                    at,
                }
            }
            LedgerCommand::Carry {
                from_account,
                amount,
                at,
            } => {
                if amount == 0 {
                    return Ok(());
                }
                LedgerEvent::CreditsCarried {
                    from_account,
                    amount,
                    at,
                }
            }
            LedgerCommand::Release { generation_id, at } => {
                let Some(reserved) = self.reserved.get(&generation_id) else {
                    return Err(LedgerError::NotReserved);
                };
                LedgerEvent::CreditsReleased {
                    amount: *reserved,
                    generation_id,
                    at,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            LedgerEvent::CreditsReserved {
                generation_id,
                amount,
                ..
            } => {
                self.reserved.insert(generation_id, amount);
            }
            LedgerEvent::CreditsSettled {
                generation_id,
                amount,
                ..
            } => {
                self.reserved.remove(&generation_id);
                self.used += amount;
            }
            LedgerEvent::CreditsReleased { generation_id, .. } => {
                self.reserved.remove(&generation_id);
            }
            LedgerEvent::CreditsCarried { amount, .. } => self.used += amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type LedgerTest = TestFramework<CreditWindow>;

    fn at() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }

    fn reserved(g: &str, amount: u64) -> LedgerEvent {
        LedgerEvent::CreditsReserved {
            generation_id: g.into(),
            amount,
            limit: 10,
            at: at(),
        }
    }

    fn reserve(g: &str, amount: u64) -> LedgerCommand {
        LedgerCommand::Reserve {
            generation_id: g.into(),
            amount,
            limit: 10,
            at: at(),
        }
    }

    #[test]
    fn credits_are_reserved_within_the_limit() {
        LedgerTest::with(())
            .given(vec![reserved("a", 4)])
            .when(reserve("b", 6))
            .then_expect_events(vec![reserved("b", 6)]);
    }

    #[test]
    fn a_reservation_beyond_the_limit_is_refused_counting_open_reservations() {
        LedgerTest::with(())
            .given(vec![reserved("a", 4)])
            .when(reserve("b", 7))
            .then_expect_error(LedgerError::Exhausted { used: 4, limit: 10 });
    }

    #[test]
    fn settling_moves_the_reservation_into_use_with_the_actual_amount() {
        LedgerTest::with(())
            .given(vec![reserved("a", 4)])
            .when(LedgerCommand::Settle {
                generation_id: "a".into(),
                amount: 3,
                at: at(),
            })
            .then_expect_events(vec![LedgerEvent::CreditsSettled {
                generation_id: "a".into(),
                reserved: 4,
                amount: 3,
                at: at(),
            }]);
    }

    #[test]
    fn a_release_gives_the_credits_back() {
        let released = LedgerEvent::CreditsReleased {
            generation_id: "a".into(),
            amount: 10,
            at: at(),
        };
        LedgerTest::with(())
            .given(vec![reserved("a", 10)])
            .when(LedgerCommand::Release {
                generation_id: "a".into(),
                at: at(),
            })
            .then_expect_events(vec![released.clone()]);
        LedgerTest::with(())
            .given(vec![reserved("a", 10), released])
            .when(reserve("b", 10))
            .then_expect_events(vec![reserved("b", 10)]);
    }

    #[test]
    fn settled_credits_stay_used_and_nothing_is_settled_twice() {
        let settled = LedgerEvent::CreditsSettled {
            generation_id: "a".into(),
            reserved: 6,
            amount: 6,
            at: at(),
        };
        LedgerTest::with(())
            .given(vec![reserved("a", 6), settled.clone()])
            .when(reserve("b", 5))
            .then_expect_error(LedgerError::Exhausted { used: 6, limit: 10 });
        LedgerTest::with(())
            .given(vec![reserved("a", 6), settled])
            .when(LedgerCommand::Release {
                generation_id: "a".into(),
                at: at(),
            })
            .then_expect_error(LedgerError::NotReserved);
    }

    #[test]
    fn carried_use_counts_against_the_limit() {
        let carried = LedgerEvent::CreditsCarried {
            from_account: "anon".into(),
            amount: 8,
            at: at(),
        };
        LedgerTest::with(())
            .given_no_previous_events()
            .when(LedgerCommand::Carry {
                from_account: "anon".into(),
                amount: 8,
                at: at(),
            })
            .then_expect_events(vec![carried.clone()]);
        LedgerTest::with(())
            .given(vec![carried])
            .when(reserve("b", 3))
            .then_expect_error(LedgerError::Exhausted { used: 8, limit: 10 });
    }

    #[test]
    fn a_retried_reservation_is_made_once() {
        LedgerTest::with(())
            .given(vec![reserved("a", 4)])
            .when(reserve("a", 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_day_window_is_the_utc_date_and_resets_at_midnight() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let (key, resets) = day_window(at);
        assert_eq!(key, "2026-11-25");
        assert_eq!(resets.to_rfc3339(), "2026-11-26T00:00:00+00:00");
    }
}
