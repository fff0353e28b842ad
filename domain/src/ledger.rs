//! Use as a ledger: one `CreditWindow` stream per account, meter and window (for example
//! `credits` on 2026-11-25, see [`crate::plans`]), so a command's cost is bounded by one window's
//! activity and never grows with the account's age.
//!
//! A send reserves the model's credits before the provider is called; the end of the reply
//! settles them (completed, or stopped/failed after its first token) or releases them (failed
//! or stopped before its first token). The window's limit arrives in the command (the plan
//! policy is outside the aggregate); two requests racing for the last credit are decided by the
//! event store's optimistic concurrency on this stream: exactly one wins.
//!
//! Purchased credits never expire, so their stream would grow for ever. They live in *books*
//! (`{account}:purchased:{book}`, the same aggregate): credits are added to the open book and
//! reserved against its balance, and once a book holds [`BOOK_EVENTS`] events with nothing
//! reserved it closes with its balance, which opens the next book. A command never loads more
//! than one book.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;

/// Events after which a purchased-credit book closes (when nothing is reserved in it).
pub const BOOK_EVENTS: u64 = 256;

/// Commands of a credit window.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerCommand {
    Reserve {
        generation_id: String,
        amount: u64,
        /// The plan's limit for this window; `None` for a purchased-credit book, whose limit is
        /// what was added to it.
        limit: Option<u64>,
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
    /// Adds purchased or granted credits to a book; `source` (an order, a grant, a link) makes
    /// a repeated delivery add once.
    Add {
        source: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    /// Moves credits of a book to another account (linking); refused beyond the balance.
    MoveOut {
        to_account: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    /// Opens book `n + 1` with the balance book `n` closed with (does nothing when it is open).
    OpenBook {
        from_book: String,
        balance: u64,
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
    CreditsAdded {
        source: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    CreditsMovedOut {
        to_account: String,
        amount: u64,
        at: DateTime<Utc>,
    },
    BookOpened {
        from_book: String,
        balance: u64,
        at: DateTime<Utc>,
    },
    BookClosed {
        balance: u64,
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
            LedgerEvent::CreditsAdded { .. } => "CreditsAdded",
            LedgerEvent::CreditsMovedOut { .. } => "CreditsMovedOut",
            LedgerEvent::BookOpened { .. } => "BookOpened",
            LedgerEvent::BookClosed { .. } => "BookClosed",
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
    /// The purchased-credit book is closed: its balance moved to the next book.
    #[error("this book of purchased credits is closed")]
    BookClosed { balance: u64 },
}

/// A window's balance: settled use and open reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreditWindow {
    used: u64,
    reserved: BTreeMap<String, u64>,
    /// Credits added to a book (purchases, grants, an opening balance).
    added: u64,
    /// Sources already added (a redelivered order adds once).
    sources: BTreeSet<String>,
    /// A purchased-credit book (it has had credits added or was opened).
    book: bool,
    closed: bool,
    events: u64,
}

impl CreditWindow {
    /// Settled plus reserved use.
    pub fn committed(&self) -> u64 {
        self.used + self.reserved.values().sum::<u64>()
    }

    /// What a book has left to reserve.
    pub fn balance(&self) -> u64 {
        self.added.saturating_sub(self.committed())
    }

    fn closes_after(&self, command_events: u64) -> bool {
        self.book && self.events + command_events >= BOOK_EVENTS
    }
}

fn command_time(command: &LedgerCommand) -> DateTime<Utc> {
    match command {
        LedgerCommand::Reserve { at, .. }
        | LedgerCommand::Settle { at, .. }
        | LedgerCommand::Release { at, .. }
        | LedgerCommand::Carry { at, .. }
        | LedgerCommand::Add { at, .. }
        | LedgerCommand::MoveOut { at, .. }
        | LedgerCommand::OpenBook { at, .. } => *at,
    }
}

impl CreditWindow {
    /// The event a command writes (`None`: nothing to do).
    fn decide(&self, command: LedgerCommand) -> Result<Option<LedgerEvent>, LedgerError> {
        let event = match command {
            LedgerCommand::Reserve {
                generation_id,
                amount,
                limit,
                at,
            } => {
                if self.reserved.contains_key(&generation_id) {
                    return Ok(None); // a retried request reserves once
                }
                let limit = limit.unwrap_or(self.added);
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
            LedgerCommand::Carry {
                from_account,
                amount,
                at,
            } => {
                if amount == 0 {
                    return Ok(None);
                }
                LedgerEvent::CreditsCarried {
                    from_account,
                    amount,
                    at,
                }
            }
            LedgerCommand::Add { source, amount, at } => {
                if amount == 0 || self.sources.contains(&source) {
                    return Ok(None);
                }
                LedgerEvent::CreditsAdded { source, amount, at }
            }
            LedgerCommand::MoveOut {
                to_account,
                amount,
                at,
            } => {
                // Open reservations stay: they settle here as the replies end.
                if amount > self.balance() {
                    return Err(LedgerError::Exhausted {
                        used: self.committed(),
                        limit: self.added,
                    });
                }
                if amount == 0 {
                    return Ok(None);
                }
                LedgerEvent::CreditsMovedOut {
                    to_account,
                    amount,
                    at,
                }
            }
            LedgerCommand::OpenBook {
                from_book,
                balance,
                at,
            } => {
                if self.events > 0 {
                    return Ok(None);
                }
                LedgerEvent::BookOpened {
                    from_book,
                    balance,
                    at,
                }
            }
        };
        Ok(Some(event))
    }
}

impl crate::personal::DataSubject for CreditWindow {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
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
        if self.closed {
            if let LedgerCommand::OpenBook { .. } = command {
                return Ok(());
            }
            return Err(LedgerError::BookClosed {
                balance: self.balance(),
            });
        }
        let ends_reservation = matches!(
            command,
            LedgerCommand::Settle { .. } | LedgerCommand::Release { .. }
        );
        let at = command_time(&command);
        let Some(event) = self.decide(command)? else {
            return Ok(());
        };
        sink.write(event, self).await;
        if ends_reservation && self.reserved.is_empty() && self.closes_after(1) {
            let balance = self.balance();
            sink.write(LedgerEvent::BookClosed { balance, at }, self)
                .await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.events += 1;
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
            LedgerEvent::CreditsAdded { source, amount, .. } => {
                self.book = true;
                self.added += amount;
                self.sources.insert(source);
            }
            LedgerEvent::CreditsMovedOut { amount, .. } => {
                self.added = self.added.saturating_sub(amount);
            }
            LedgerEvent::BookOpened { balance, .. } => {
                self.book = true;
                self.added += balance;
            }
            LedgerEvent::BookClosed { .. } => self.closed = true,
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
            limit: Some(10),
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

    fn added(source: &str, amount: u64) -> LedgerEvent {
        LedgerEvent::CreditsAdded {
            source: source.into(),
            amount,
            at: at(),
        }
    }

    fn reserve_from_book(g: &str, amount: u64) -> LedgerCommand {
        LedgerCommand::Reserve {
            generation_id: g.into(),
            amount,
            limit: None,
            at: at(),
        }
    }

    #[test]
    fn a_book_reserves_against_what_was_added() {
        LedgerTest::with(())
            .given(vec![added("order:1", 5)])
            .when(reserve_from_book("a", 5))
            .then_expect_events(vec![LedgerEvent::CreditsReserved {
                generation_id: "a".into(),
                amount: 5,
                limit: 5,
                at: at(),
            }]);
        LedgerTest::with(())
            .given(vec![added("order:1", 5), reserved("a", 3)])
            .when(reserve_from_book("b", 3))
            .then_expect_error(LedgerError::Exhausted { used: 3, limit: 5 });
        LedgerTest::with(())
            .given_no_previous_events()
            .when(reserve_from_book("a", 1))
            .then_expect_error(LedgerError::Exhausted { used: 0, limit: 0 });
    }

    #[test]
    fn an_order_delivered_twice_adds_once() {
        LedgerTest::with(())
            .given(vec![added("order:1", 100)])
            .when(LedgerCommand::Add {
                source: "order:1".into(),
                amount: 100,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn moving_out_takes_the_unreserved_balance() {
        LedgerTest::with(())
            .given(vec![added("order:1", 10), reserved("a", 4)])
            .when(LedgerCommand::MoveOut {
                to_account: "acc".into(),
                amount: 6,
                at: at(),
            })
            .then_expect_events(vec![LedgerEvent::CreditsMovedOut {
                to_account: "acc".into(),
                amount: 6,
                at: at(),
            }]);
    }

    #[test]
    fn moving_out_more_than_the_balance_is_refused() {
        LedgerTest::with(())
            .given(vec![added("order:1", 10), reserved("a", 4)])
            .when(LedgerCommand::MoveOut {
                to_account: "acc".into(),
                amount: 7,
                at: at(),
            })
            .then_expect_error(LedgerError::Exhausted { used: 4, limit: 10 });
    }

    /// A book `BOOK_EVENTS - 2` events long, with `balance` credits left and one reservation.
    fn full_book(balance: u64) -> Vec<LedgerEvent> {
        let mut rest = Vec::new();
        while rest.len() + 3 < BOOK_EVENTS as usize {
            rest.push(added(&format!("grant:{}", rest.len()), 1));
            rest.push(LedgerEvent::CreditsCarried {
                from_account: "x".into(),
                amount: 1,
                at: at(),
            });
        }
        rest.push(reserved("a", 1));
        // Grants and carries cancel out; the reservation is the one credit to add on top.
        let mut events = vec![added("order:1", balance + 1)];
        events.extend(rest);
        events
    }

    #[test]
    fn a_full_book_closes_with_its_balance_once_nothing_is_reserved() {
        let book = full_book(7);
        LedgerTest::with(())
            .given(book.clone())
            .when(LedgerCommand::Settle {
                generation_id: "a".into(),
                amount: 1,
                at: at(),
            })
            .then_expect_events(vec![
                LedgerEvent::CreditsSettled {
                    generation_id: "a".into(),
                    reserved: 1,
                    amount: 1,
                    at: at(),
                },
                LedgerEvent::BookClosed {
                    balance: 7,
                    at: at(),
                },
            ]);
        let mut closed = book;
        closed.push(LedgerEvent::CreditsReleased {
            generation_id: "a".into(),
            amount: 1,
            at: at(),
        });
        closed.push(LedgerEvent::BookClosed {
            balance: 8,
            at: at(),
        });
        LedgerTest::with(())
            .given(closed)
            .when(reserve_from_book("b", 1))
            .then_expect_error(LedgerError::BookClosed { balance: 8 });
    }

    #[test]
    fn a_window_never_closes_however_long() {
        let mut events = Vec::new();
        for i in 0..BOOK_EVENTS {
            events.push(reserved(&format!("g{i}"), 0));
            events.push(LedgerEvent::CreditsReleased {
                generation_id: format!("g{i}"),
                amount: 0,
                at: at(),
            });
        }
        LedgerTest::with(())
            .given(events)
            .when(reserve("last", 1))
            .then_expect_events(vec![reserved("last", 1)]);
    }

    #[test]
    fn the_next_book_opens_once_with_the_closing_balance() {
        let opened = LedgerEvent::BookOpened {
            from_book: "00000000".into(),
            balance: 8,
            at: at(),
        };
        let open = LedgerCommand::OpenBook {
            from_book: "00000000".into(),
            balance: 8,
            at: at(),
        };
        LedgerTest::with(())
            .given_no_previous_events()
            .when(open.clone())
            .then_expect_events(vec![opened.clone()]);
        LedgerTest::with(())
            .given(vec![opened.clone()])
            .when(open)
            .then_expect_events(vec![]);
        LedgerTest::with(())
            .given(vec![opened])
            .when(reserve_from_book("b", 8))
            .then_expect_events(vec![LedgerEvent::CreditsReserved {
                generation_id: "b".into(),
                amount: 8,
                limit: 8,
                at: at(),
            }]);
    }
}
