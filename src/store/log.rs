//! Reading the global log in order.
//!
//! SQLite: position order (one writer connection, so position order is commit order). PostgreSQL: `(tx_id,
//! position)` order, taking only rows of transactions older than the oldest one still running
//! (`pg_snapshot_xmin`), so an event whose transaction took its position early and committed late
//! is read after it commits instead of being skipped.

use serde_json::Value;
use sqlx::Row;
use threadline_projections::{Db, StoredEvent};

/// A place in the log: `(tx_id, position)`; `tx_id` is 0 on SQLite. `Cursor::default()` is
/// before the first event.
pub type Cursor = (i64, i64);

const SQLITE_READ: &str = "SELECT position, 0 AS tx_id, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload, metadata, event_id, recorded_at \
    FROM events WHERE position > $1 ORDER BY position LIMIT $2";

const POSTGRES_READ: &str = "SELECT position, tx_id::text::bigint AS tx_id, aggregate_type, \
    aggregate_id, sequence, event_type, event_version, payload, metadata, event_id::text AS event_id, \
    (extract(epoch FROM recorded_at) * 1000000)::bigint AS recorded_at \
    FROM events \
    WHERE (tx_id, position) > ($1::bigint::text::xid8, $2) \
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
    ORDER BY events.tx_id, events.position LIMIT $3";

/// The same reads with the payload and metadata of `Account` and `Thread` events only (the
/// others, a reply's chunks above all, come with JSON `null`s): for the feed and revocations,
/// which tail every event of the log but look inside only those.
const SQLITE_TAIL: &str = "SELECT position, 0 AS tx_id, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, \
    CASE WHEN aggregate_type IN ('Account', 'Thread') THEN payload ELSE 'null' END AS payload, \
    CASE WHEN aggregate_type IN ('Account', 'Thread') THEN metadata ELSE 'null' END AS metadata, \
    event_id, recorded_at \
    FROM events WHERE position > $1 ORDER BY position LIMIT $2";

const POSTGRES_TAIL: &str = "SELECT position, tx_id::text::bigint AS tx_id, aggregate_type, \
    aggregate_id, sequence, event_type, event_version, \
    CASE WHEN aggregate_type IN ('Account', 'Thread') THEN payload ELSE 'null'::json END AS payload, \
    CASE WHEN aggregate_type IN ('Account', 'Thread') THEN metadata ELSE 'null'::json END AS metadata, \
    event_id::text AS event_id, \
    (extract(epoch FROM recorded_at) * 1000000)::bigint AS recorded_at \
    FROM events \
    WHERE (tx_id, position) > ($1::bigint::text::xid8, $2) \
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
    ORDER BY events.tx_id, events.position LIMIT $3";

/// Formats a cursor as an SSE id.
pub fn cursor_id(cursor: Cursor) -> String {
    format!("{}.{}", cursor.0, cursor.1)
}

/// Parses an SSE id back into a cursor: two unsigned decimal numbers joined by a dot.
pub fn parse_cursor(s: &str) -> Option<Cursor> {
    let (tx, pos) = s.trim().split_once('.')?;
    Some((unsigned(tx)?, unsigned(pos)?))
}

/// A non-negative decimal number written with digits only (no sign, no spaces).
pub fn unsigned(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Up to `limit` events after `after`, in log order.
pub async fn read_after(
    db: &Db,
    after: Cursor,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    read(db, after, limit, SQLITE_READ, POSTGRES_READ).await
}

/// [`read_after`] on SQLite through a `rusqlite` connection (the projector's writer thread):
/// the rows come back in one hand-off instead of one each.
pub fn read_after_on(
    conn: &rusqlite::Connection,
    after: Cursor,
    limit: i64,
) -> Result<Vec<StoredEvent>, rusqlite::Error> {
    let json = |i: usize, text: String| {
        serde_json::from_str::<Value>(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let mut stmt = conn.prepare_cached(SQLITE_READ)?;
    let rows = stmt.query_map(rusqlite::params![after.1, limit], |row| {
        Ok(StoredEvent {
            position: row.get(0)?,
            tx_id: row.get(1)?,
            aggregate_type: row.get(2)?,
            aggregate_id: row.get(3)?,
            sequence: row.get(4)?,
            event_type: row.get(5)?,
            event_version: row.get(6)?,
            payload: json(7, row.get(7)?)?,
            metadata: json(8, row.get(8)?)?,
            event_id: row.get(9)?,
            recorded_at: row.get(10)?,
        })
    })?;
    rows.collect()
}

/// Up to `limit` events after `after`, in log order, with the payload and metadata of
/// `Account` and `Thread` events only (the others carry `null`s).
pub async fn read_tail(
    db: &Db,
    after: Cursor,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    read(db, after, limit, SQLITE_TAIL, POSTGRES_TAIL).await
}

async fn read(
    db: &Db,
    after: Cursor,
    limit: i64,
    sqlite: &'static str,
    postgres: &'static str,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    match db {
        Db::Sqlite { reader, .. } => {
            let rows = sqlx::query(sqlite)
                .bind(after.1)
                .bind(limit)
                .fetch_all(reader)
                .await?;
            rows.iter().map(decode_row).collect()
        }
        Db::Postgres(pool) => {
            let rows = sqlx::query(postgres)
                .bind(after.0)
                .bind(after.1)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_row).collect()
        }
    }
}

fn decode_row<'r, R>(row: &'r R) -> Result<StoredEvent, sqlx::Error>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Value: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredEvent {
        position: row.try_get("position")?,
        tx_id: row.try_get("tx_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        event_id: row.try_get("event_id")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Which events a reader of the raw log wants (`threadline events`): empty `types` means
/// every type; `account` keeps the account's own stream and every event it caused (its
/// `actor` in the metadata).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub types: Vec<String>,
    pub account: Option<String>,
}

const SQLITE_RANGE_WHERE: &str = "position > $1 AND position <= $2 \
    AND ($3 = '[]' OR event_type IN (SELECT value FROM json_each($3))) \
    AND ($4 IS NULL OR aggregate_id = $4 OR json_extract(metadata, '$.actor') = $4)";

const POSTGRES_RANGE_WHERE: &str = "(tx_id, position) > ($1::bigint::text::xid8, $2) \
    AND (tx_id, position) <= ($3::bigint::text::xid8, $4) \
    AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
    AND (cardinality($5::text[]) = 0 OR event_type = ANY($5)) \
    AND ($6::text IS NULL OR aggregate_id = $6 OR metadata->>'actor' = $6)";

/// The columns of [`read_after`], to put in front of a `WHERE`.
fn select_columns(db: &Db) -> &'static str {
    match db {
        Db::Sqlite { .. } => {
            "SELECT position, 0 AS tx_id, aggregate_type, aggregate_id, \
            sequence, event_type, event_version, payload, metadata, event_id, recorded_at \
            FROM events WHERE "
        }
        Db::Postgres(_) => {
            "SELECT position, tx_id::text::bigint AS tx_id, aggregate_type, \
            aggregate_id, sequence, event_type, event_version, payload, metadata, \
            event_id::text AS event_id, \
            (extract(epoch FROM recorded_at) * 1000000)::bigint AS recorded_at \
            FROM events WHERE "
        }
    }
}

/// Where a range read goes in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The first `limit` matching events after `after`.
    Forward,
    /// The last `limit` matching events up to `until`, returned in log order.
    Newest,
}

/// Up to `limit` events in `(after, until]` that pass `filter`, in log order.
pub async fn read_range(
    db: &Db,
    after: Cursor,
    until: Cursor,
    filter: &Filter,
    direction: Direction,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let order = match (db, direction) {
        (Db::Sqlite { .. }, Direction::Forward) => " ORDER BY position LIMIT ",
        (Db::Sqlite { .. }, Direction::Newest) => " ORDER BY position DESC LIMIT ",
        (Db::Postgres(_), Direction::Forward) => " ORDER BY events.tx_id, events.position LIMIT ",
        (Db::Postgres(_), Direction::Newest) => {
            " ORDER BY events.tx_id DESC, events.position DESC LIMIT "
        }
    };
    let mut events = match db {
        Db::Sqlite { reader, .. } => {
            let sql = format!("{}{SQLITE_RANGE_WHERE}{order}$5", select_columns(db));
            let types = serde_json::to_string(&filter.types).unwrap_or_else(|_| "[]".into());
            let rows = sqlx::query(&sql)
                .bind(after.1)
                .bind(until.1)
                .bind(types)
                .bind(filter.account.as_deref())
                .bind(limit)
                .fetch_all(reader)
                .await?;
            rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?
        }
        Db::Postgres(pool) => {
            let sql = format!("{}{POSTGRES_RANGE_WHERE}{order}$7", select_columns(db));
            let rows = sqlx::query(&sql)
                .bind(after.0)
                .bind(after.1)
                .bind(until.0)
                .bind(until.1)
                .bind(&filter.types)
                .bind(filter.account.as_deref())
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?
        }
    };
    if direction == Direction::Newest {
        events.reverse();
    }
    Ok(events)
}

/// Every event of the `aggregate_type` streams `ids`, in log order (at most 1,000 streams a
/// call; the caller splits longer lists).
pub async fn read_streams(
    db: &Db,
    aggregate_type: &str,
    ids: &[String],
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    match db {
        Db::Sqlite { reader, .. } => {
            let sql = format!(
                "{}aggregate_type = $1 AND aggregate_id IN (SELECT value FROM json_each($2)) \
                 ORDER BY position",
                select_columns(db)
            );
            let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            let rows = sqlx::query(&sql)
                .bind(aggregate_type)
                .bind(ids)
                .fetch_all(reader)
                .await?;
            rows.iter().map(decode_row).collect()
        }
        Db::Postgres(pool) => {
            let sql = format!(
                "{}aggregate_type = $1 AND aggregate_id = ANY($2) \
                 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY events.tx_id, events.position",
                select_columns(db)
            );
            let rows = sqlx::query(&sql)
                .bind(aggregate_type)
                .bind(ids)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_row).collect()
        }
    }
}

/// How many events in `(after, until]` pass `filter`.
pub async fn count_range(
    db: &Db,
    after: Cursor,
    until: Cursor,
    filter: &Filter,
) -> Result<i64, sqlx::Error> {
    match db {
        Db::Sqlite { reader, .. } => {
            let sql = format!("SELECT COUNT(*) FROM events WHERE {SQLITE_RANGE_WHERE}");
            let types = serde_json::to_string(&filter.types).unwrap_or_else(|_| "[]".into());
            sqlx::query_scalar(&sql)
                .bind(after.1)
                .bind(until.1)
                .bind(types)
                .bind(filter.account.as_deref())
                .fetch_one(reader)
                .await
        }
        Db::Postgres(pool) => {
            let sql = format!("SELECT COUNT(*) FROM events WHERE {POSTGRES_RANGE_WHERE}");
            sqlx::query_scalar(&sql)
                .bind(after.0)
                .bind(after.1)
                .bind(until.0)
                .bind(until.1)
                .bind(&filter.types)
                .bind(filter.account.as_deref())
                .fetch_one(pool)
                .await
        }
    }
}

/// The cursor of the event at `position` (on SQLite, `(0, position)` without a query).
pub async fn cursor_at(db: &Db, position: i64) -> Result<Option<Cursor>, sqlx::Error> {
    match db {
        Db::Sqlite { .. } => Ok(Some((0, position))),
        Db::Postgres(pool) => {
            sqlx::query_as("SELECT tx_id::text::bigint, position FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(pool)
                .await
        }
    }
}

/// The log cursor of an aggregate's latest event, if it has any.
pub async fn last_cursor_of(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<Cursor>, sqlx::Error> {
    match db {
        // A read connection sees every commit that has returned (WAL), without queueing
        // behind the one writer connection.
        Db::Sqlite { reader, .. } => {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT 0, position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                 ORDER BY sequence DESC LIMIT 1",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(reader)
            .await
        }
        Db::Postgres(pool) => {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT tx_id::text::bigint, position FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(pool)
            .await
        }
    }
}

/// The cursor of the newest event visible to readers now (the head of the log).
pub async fn head(db: &Db) -> Result<Cursor, sqlx::Error> {
    let head: Option<(i64, i64)> = match db {
        Db::Sqlite { reader, .. } => {
            sqlx::query_as("SELECT 0, position FROM events ORDER BY position DESC LIMIT 1")
                .fetch_optional(reader)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT tx_id::text::bigint, position FROM events \
                 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.tx_id DESC, events.position DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(head.unwrap_or_default())
}

/// Whether `cursor` names an event of the log (the cursors the server issues all do).
pub async fn is_event(db: &Db, cursor: Cursor) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = match db {
        Db::Sqlite { reader, .. } => {
            if cursor.0 != 0 {
                return Ok(false);
            }
            sqlx::query_scalar("SELECT position FROM events WHERE position = $1")
                .bind(cursor.1)
                .fetch_optional(reader)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT position FROM events WHERE position = $2 \
                 AND tx_id = $1::bigint::text::xid8 \
                 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())",
            )
            .bind(cursor.0)
            .bind(cursor.1)
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(found.is_some())
}

/// Number of events in the log.
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    threadline_projections::on_read!(db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(pool).await)
}

/// The payload of the newest `event_type` event of one stream, read from the log itself (no
/// projection lag): for a handler that needs what its own command just recorded.
pub async fn latest_payload(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let sql = "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
               AND event_type = $3 ORDER BY sequence DESC LIMIT 1";
    match db {
        // A read connection sees every commit that has returned (WAL), without queueing
        // behind the one writer connection.
        Db::Sqlite { reader, .. } => {
            sqlx::query_scalar(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(event_type)
                .fetch_optional(reader)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(event_type)
                .fetch_optional(pool)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(&cursor_id((7, 42))), Some((7, 42)));
        for forged in [
            "x",
            "0.-5",
            "-1.5",
            "+1.5",
            "1.5.6",
            "1. 5",
            "1.",
            ".5",
            "0.99999999999999999999",
        ] {
            assert_eq!(parse_cursor(forged), None, "{forged}");
        }
    }
}
