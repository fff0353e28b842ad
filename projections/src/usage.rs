//! Credit use per account and window, and the ledger lines behind it (what `/v1/me/usage`
//! shows). Folds `CreditWindow` streams, whose ids are `{account}:{meter}:{window}`.

use serde::Serialize;
use threadline_domain::ledger::LedgerEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// A change to the usage tables.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Adds to a window's use, reservations and granted credits (and sets its quota when
    /// known).
    Window {
        id: String,
        account: String,
        meter: String,
        window: String,
        used: i64,
        reserved: i64,
        granted: i64,
        quota: Option<i64>,
        at: i64,
    },
    /// One movement, as the statement shows it.
    Line {
        position: i64,
        account: String,
        meter: String,
        window: String,
        /// The reply (reserve, settle, release), the order or grant (added), the other
        /// account (carried, moved out) or the previous book (opened).
        generation_id: String,
        kind: &'static str,
        amount: i64,
        at: i64,
    },
}

/// How one ledger event moves its window.
struct Movement {
    reference: String,
    kind: &'static str,
    amount: u64,
    used: i64,
    reserved: i64,
    granted: i64,
    quota: Option<i64>,
    at: chrono::DateTime<chrono::Utc>,
}

fn movement(event: LedgerEvent) -> Movement {
    let plain = |reference, kind, amount: u64, at| Movement {
        reference,
        kind,
        amount,
        used: 0,
        reserved: 0,
        granted: 0,
        quota: None,
        at,
    };
    match event {
        LedgerEvent::CreditsReserved {
            generation_id,
            amount,
            limit,
            at,
        } => Movement {
            reserved: amount as i64,
            quota: Some(limit as i64),
            ..plain(generation_id, "reserved", amount, at)
        },
        LedgerEvent::CreditsSettled {
            generation_id,
            reserved,
            amount,
            at,
        } => Movement {
            used: amount as i64,
            reserved: -(reserved as i64),
            ..plain(generation_id, "settled", amount, at)
        },
        LedgerEvent::CreditsReleased {
            generation_id,
            amount,
            at,
        } => Movement {
            reserved: -(amount as i64),
            ..plain(generation_id, "released", amount, at)
        },
        LedgerEvent::CreditsCarried {
            from_account,
            amount,
            at,
        } => Movement {
            used: amount as i64,
            ..plain(from_account, "carried", amount, at)
        },
        LedgerEvent::CreditsAdded { source, amount, at } => Movement {
            granted: amount as i64,
            ..plain(source, "added", amount, at)
        },
        LedgerEvent::CreditsMovedOut {
            to_account,
            amount,
            at,
        } => Movement {
            granted: -(amount as i64),
            ..plain(to_account, "moved_out", amount, at)
        },
        LedgerEvent::BookOpened {
            from_book,
            balance,
            at,
        } => Movement {
            granted: balance as i64,
            ..plain(from_book, "book_opened", balance, at)
        },
        LedgerEvent::BookClosed { balance, at } => plain(String::new(), "book_closed", balance, at),
    }
}

/// Folds one event of window stream `id` at log `position`.
pub fn apply(id: &str, position: i64, event: LedgerEvent) -> Vec<Change> {
    let mut parts = id.splitn(3, ':');
    let (Some(account), Some(meter), Some(window)) = (parts.next(), parts.next(), parts.next())
    else {
        return vec![];
    };
    let m = movement(event);
    vec![
        Change::Window {
            id: id.to_owned(),
            account: account.to_owned(),
            meter: meter.to_owned(),
            window: window.to_owned(),
            used: m.used,
            reserved: m.reserved,
            granted: m.granted,
            quota: m.quota,
            at: micros(m.at),
        },
        Change::Line {
            position,
            account: account.to_owned(),
            meter: meter.to_owned(),
            window: window.to_owned(),
            generation_id: m.reference,
            kind: m.kind,
            amount: m.amount as i64,
            at: micros(m.at),
        },
    ]
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let windows = t.name("usage_windows");
    let lines = t.name("ledger_lines");
    match change {
        Change::Window {
            id,
            account,
            meter,
            window,
            used,
            reserved,
            granted,
            quota,
            at,
        } => Stmt::new(
            format!(
                "INSERT INTO {windows} (id, account, meter, window_key, used, reserved, granted, quota, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, 0), $9) \
                 ON CONFLICT (id) DO UPDATE SET used = {windows}.used + excluded.used, \
                 reserved = {windows}.reserved + excluded.reserved, \
                 granted = {windows}.granted + excluded.granted, \
                 quota = CASE WHEN $8 IS NULL THEN {windows}.quota ELSE excluded.quota END, \
                 updated_at = excluded.updated_at"
            ),
            vec![
                id.into(),
                account.into(),
                meter.into(),
                window.into(),
                used.into(),
                reserved.into(),
                granted.into(),
                quota.into(),
                at.into(),
            ],
        ),
        Change::Line {
            position,
            account,
            meter,
            window,
            generation_id,
            kind,
            amount,
            at,
        } => Stmt::new(
            format!(
                "INSERT INTO {lines} (position, account, meter, window_key, generation_id, kind, amount, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            vec![
                position.into(),
                account.into(),
                meter.into(),
                window.into(),
                generation_id.into(),
                kind.into(),
                amount.into(),
                at.into(),
            ],
        ),
    }
}

/// The usage projection.
pub struct UsageLedger;

impl Projection for UsageLedger {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn version(&self) -> i64 {
        // 2: purchased-credit books (`granted`), every meter.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_windows", "ledger_lines"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let (windows, lines) = (t.name("usage_windows"), t.name("ledger_lines"));
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {windows} (
                    id TEXT PRIMARY KEY,
                    account TEXT NOT NULL,
                    meter TEXT NOT NULL,
                    window_key TEXT NOT NULL,
                    used BIGINT NOT NULL,
                    reserved BIGINT NOT NULL,
                    granted BIGINT NOT NULL,
                    quota BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {lines} (
                    position BIGINT PRIMARY KEY,
                    account TEXT NOT NULL,
                    meter TEXT NOT NULL,
                    window_key TEXT NOT NULL,
                    generation_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    amount BIGINT NOT NULL,
                    at BIGINT NOT NULL
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {lines} (account, position)",
                t.index("ledger_lines", "account")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {lines} (generation_id)",
                t.index("ledger_lines", "generation")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {windows} (account, meter, window_key)",
                t.index("usage_windows", "account")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        if event.aggregate_type != "CreditWindow" {
            return Ok(vec![]);
        }
        Ok(apply(&event.aggregate_id, event.position, decode(event)?)
            .into_iter()
            .map(|c| sql(c, tables))
            .collect())
    }
}

/// A window's totals.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WindowRow {
    pub used: i64,
    pub reserved: i64,
    pub granted: i64,
    pub quota: i64,
}

impl WindowRow {
    /// Settled plus reserved use.
    pub fn committed(&self) -> u64 {
        (self.used + self.reserved).max(0) as u64
    }

    /// What a purchased-credit book has left.
    pub fn balance(&self) -> u64 {
        (self.granted - self.used - self.reserved).max(0) as u64
    }
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LineRow {
    pub meter: String,
    pub window_key: String,
    pub generation_id: String,
    pub kind: String,
    pub amount: i64,
    pub at: i64,
}

/// The totals of window stream `id`.
pub async fn window(db: &Db, id: &str) -> Result<Option<WindowRow>, sqlx::Error> {
    on_read!(db, pool => sqlx::query_as("SELECT used, reserved, granted, quota FROM usage_windows WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// The newest purchased-credit book of an account: its key and totals.
pub async fn newest_book(
    db: &Db,
    account: &str,
) -> Result<Option<(String, WindowRow)>, sqlx::Error> {
    let row: Option<(String, i64, i64, i64, i64)> = on_read!(db, pool => sqlx::query_as(
        "SELECT window_key, used, reserved, granted, quota FROM usage_windows \
         WHERE account = $1 AND meter = 'purchased' ORDER BY window_key DESC LIMIT 1")
        .bind(account)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|(key, used, reserved, granted, quota)| {
        (
            key,
            WindowRow {
                used,
                reserved,
                granted,
                quota,
            },
        )
    }))
}

/// The open reservations of a reply: `(window stream id, meter, amount)`.
pub async fn open_reservations(
    db: &Db,
    generation_id: &str,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = on_read!(db, pool => sqlx::query_as(
        "SELECT account, meter, window_key, kind, amount FROM ledger_lines \
         WHERE generation_id = $1 ORDER BY position")
        .bind(generation_id)
        .fetch_all(pool)
        .await)?;
    let mut open: Vec<(String, String, i64)> = Vec::new();
    for (account, meter, window, kind, amount) in rows {
        let id = format!("{account}:{meter}:{window}");
        match kind.as_str() {
            "reserved" => open.push((id, meter, amount)),
            "settled" | "released" => open.retain(|(i, _, _)| *i != id),
            _ => {}
        }
    }
    Ok(open)
}

/// One ledger line with its log position (statements).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PositionedLine {
    pub position: i64,
    pub meter: String,
    pub window_key: String,
    pub generation_id: String,
    pub kind: String,
    pub amount: i64,
    pub at: i64,
}

/// Every ledger line of an account, oldest first.
pub async fn all_lines_of(db: &Db, account: &str) -> Result<Vec<PositionedLine>, sqlx::Error> {
    on_read!(db, pool => sqlx::query_as(
        "SELECT position, meter, window_key, generation_id, kind, amount, at FROM ledger_lines \
         WHERE account = $1 ORDER BY position")
        .bind(account)
        .fetch_all(pool)
        .await)
}

/// The quota each window of an account last recorded, by `{meter}:{window_key}`.
pub async fn windows_of(
    db: &Db,
    account: &str,
) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = on_read!(db, pool => sqlx::query_as(
        "SELECT meter, window_key, quota FROM usage_windows WHERE account = $1")
        .bind(account)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(meter, key, quota)| (format!("{meter}:{key}"), quota))
        .collect())
}

/// The newest ledger lines of an account.
pub async fn lines_of(db: &Db, account: &str, limit: i64) -> Result<Vec<LineRow>, sqlx::Error> {
    on_read!(db, pool => sqlx::query_as(
        "SELECT meter, window_key, generation_id, kind, amount, at FROM ledger_lines \
         WHERE account = $1 ORDER BY position DESC LIMIT $2")
        .bind(account)
        .bind(limit)
        .fetch_all(pool)
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn reserve_settle_and_release_move_the_window_totals() {
        let at = DateTime::UNIX_EPOCH;
        let id = "acc:credits:2026-11-25";
        let reserve = apply(
            id,
            1,
            LedgerEvent::CreditsReserved {
                generation_id: "g".into(),
                amount: 3,
                limit: 20,
                at,
            },
        );
        assert!(
            matches!(&reserve[0], Change::Window { used: 0, reserved: 3, quota: Some(20), account, .. } if account == "acc")
        );
        let settle = apply(
            id,
            2,
            LedgerEvent::CreditsSettled {
                generation_id: "g".into(),
                reserved: 3,
                amount: 2,
                at,
            },
        );
        assert!(matches!(
            &settle[0],
            Change::Window {
                used: 2,
                reserved: -3,
                quota: None,
                ..
            }
        ));
        let release = apply(
            id,
            3,
            LedgerEvent::CreditsReleased {
                generation_id: "h".into(),
                amount: 4,
                at,
            },
        );
        assert!(matches!(
            &release[0],
            Change::Window {
                used: 0,
                reserved: -4,
                ..
            }
        ));
        assert!(matches!(
            &release[1],
            Change::Line {
                kind: "released",
                amount: 4,
                ..
            }
        ));
    }

    /// The `granted` delta and the line kind an event of a purchased-credit book gives.
    fn book(event: LedgerEvent) -> (i64, &'static str, i64) {
        let changes = apply("acc:purchased:00000000", 9, event);
        match &changes[..] {
            [
                Change::Window {
                    granted,
                    used: 0,
                    reserved: 0,
                    ..
                },
                Change::Line { kind, amount, .. },
            ] => (*granted, *kind, *amount),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn book_events_move_what_was_granted() {
        let at = DateTime::UNIX_EPOCH;
        assert_eq!(
            book(LedgerEvent::CreditsAdded {
                source: "order:polar:1".into(),
                amount: 100,
                at
            }),
            (100, "added", 100)
        );
        assert_eq!(
            book(LedgerEvent::CreditsMovedOut {
                to_account: "b".into(),
                amount: 40,
                at
            }),
            (-40, "moved_out", 40)
        );
        assert_eq!(
            book(LedgerEvent::BookOpened {
                from_book: "00000000".into(),
                balance: 7,
                at
            }),
            (7, "book_opened", 7)
        );
        assert_eq!(
            book(LedgerEvent::BookClosed { balance: 7, at }),
            (0, "book_closed", 7)
        );
    }

    #[test]
    fn a_malformed_window_id_is_ignored() {
        assert!(
            apply(
                "nocolons",
                1,
                LedgerEvent::CreditsReleased {
                    generation_id: "g".into(),
                    amount: 1,
                    at: DateTime::UNIX_EPOCH
                }
            )
            .is_empty()
        );
    }
}
