//! The log's hash chain: tamper evidence for the event log.
//!
//! Every event is sealed, in global order, with `seal = SHA-256(previous seal ‖ canonical
//! event)`, where the canonical event is the JSON array of its cursor, stream, sequence, type,
//! version, id, time, payload and metadata (serde_json's rendering of the values the log
//! returns, so the same bytes on every read). The first event's previous seal is 32 zero bytes.
//! Seals live beside the log (`log_seals`), and `log_chain` holds the head: the last sealed
//! cursor and its seal.
//!
//! The sealer ([`run`]) works like a projection: it reads the events after the head, chains
//! them and writes their seals and the new head in one transaction whose first statement moves
//! the head only if it is still where the batch started (compare-and-set), so with several
//! nodes or a crash between batches every event is sealed exactly once. [`verify`] recomputes
//! the chain from the log and names the first event that does not match its seal — a changed
//! row, a deleted one (a seal without its event) or an inserted one (an event without a seal
//! below the head) — and returns the head hash an operator can publish elsewhere: a rewrite of
//! the whole chain after the fact changes it.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;
use threadline_projections::{Db, StoredEvent, Tx};
use tokio::sync::watch;

use super::log::{self, Cursor};

/// A seal: 32 bytes of SHA-256.
pub type Hash = [u8; 32];

/// The previous seal of the first event.
pub const GENESIS: Hash = [0; 32];

/// Events sealed per transaction.
const BATCH: i64 = 1000;

/// How often an idle sealer looks for new events.
const IDLE: Duration = Duration::from_millis(500);

/// The canonical bytes of an event: what its seal covers.
pub fn canonical(event: &StoredEvent) -> Vec<u8> {
    let fields = (
        event.tx_id,
        event.position,
        &event.aggregate_type,
        &event.aggregate_id,
        event.sequence,
        &event.event_type,
        &event.event_version,
        &event.event_id,
        event.recorded_at,
        &event.payload,
        &event.metadata,
    );
    // Serializing numbers, strings and JSON values into a vector cannot fail.
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// The seal of `event` after `previous`.
pub fn chain(previous: &Hash, event: &StoredEvent) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical(event));
    hasher.finalize().into()
}

/// The sealed head: the last sealed cursor and its seal ([`GENESIS`] at the start).
pub async fn head(db: &Db) -> Result<(Cursor, Hash), sqlx::Error> {
    const SQL: &str = "SELECT tx_id, position, hash FROM log_chain WHERE id = 1";
    let row: Option<(i64, i64, Vec<u8>)> = threadline_projections::on_read!(db, pool => {
        sqlx::query_as(SQL).fetch_optional(pool).await?
    });
    Ok(match row {
        Some((tx_id, position, hash)) => ((tx_id, position), to_hash(&hash)),
        None => (Cursor::default(), GENESIS),
    })
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut hash = GENESIS;
    let n = bytes.len().min(32);
    hash[..n].copy_from_slice(&bytes[..n]);
    hash
}

/// Seals the next batch of events after the head. Returns how many it sealed (0: caught up,
/// or another node moved the head meanwhile and the batch is left to it).
pub async fn seal_batch(db: &Db) -> Result<u64, sqlx::Error> {
    let (from, mut previous) = head(db).await?;
    let events = log::read_after(db, from, BATCH).await?;
    let Some(last) = events.last().map(StoredEvent::cursor) else {
        return Ok(0);
    };
    let mut seals = Vec::with_capacity(events.len());
    for event in &events {
        previous = chain(&previous, event);
        seals.push((event.cursor(), previous));
    }
    let mut tx = db.begin().await?;
    if !move_head(&mut tx, from, last, &previous).await? {
        return Ok(0);
    }
    insert_seals(&mut tx, &seals).await?;
    tx.commit().await?;
    Ok(seals.len() as u64)
}

/// Moves the head from `from` to `to` (with `hash`) if it is still at `from`.
async fn move_head(
    tx: &mut Tx<'_>,
    from: Cursor,
    to: Cursor,
    hash: &Hash,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE log_chain SET tx_id = $1, position = $2, hash = $3, \
        updated_at = $4 WHERE id = 1 AND tx_id = $5 AND position = $6";
    let now = chrono::Utc::now().timestamp_micros();
    let moved = match tx {
        Tx::Sqlite(t) => sqlx::query(SQL)
            .bind(to.0)
            .bind(to.1)
            .bind(hash.as_slice())
            .bind(now)
            .bind(from.0)
            .bind(from.1)
            .execute(&mut **t)
            .await?
            .rows_affected(),
        Tx::Postgres(t) => sqlx::query(SQL)
            .bind(to.0)
            .bind(to.1)
            .bind(hash.as_slice())
            .bind(now)
            .bind(from.0)
            .bind(from.1)
            .execute(&mut **t)
            .await?
            .rows_affected(),
    };
    Ok(moved == 1)
}

/// Writes the seals as one statement.
async fn insert_seals(tx: &mut Tx<'_>, seals: &[(Cursor, Hash)]) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Sqlite(t) => {
            let mut sql = String::from("INSERT INTO log_seals (tx_id, position, hash) VALUES ");
            for i in 0..seals.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?, ?, ?)");
            }
            let mut query = sqlx::query(&sql);
            for ((tx_id, position), hash) in seals {
                query = query.bind(*tx_id).bind(*position).bind(hash.as_slice());
            }
            query.execute(&mut **t).await?;
        }
        Tx::Postgres(t) => {
            let tx_ids: Vec<i64> = seals.iter().map(|((tx_id, _), _)| *tx_id).collect();
            let positions: Vec<i64> = seals.iter().map(|((_, p), _)| *p).collect();
            let hashes: Vec<Vec<u8>> = seals.iter().map(|(_, h)| h.to_vec()).collect();
            sqlx::query(
                "INSERT INTO log_seals (tx_id, position, hash) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
            )
            .bind(tx_ids)
            .bind(positions)
            .bind(hashes)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Seals until the head of the log, then returns how many events it sealed.
pub async fn seal_all(db: &Db) -> Result<u64, sqlx::Error> {
    let mut sealed = 0;
    loop {
        let n = seal_batch(db).await?;
        sealed += n;
        if n == 0 {
            return Ok(sealed);
        }
    }
}

/// The sealer task: seals new events until `stop` turns true.
pub async fn run(db: Db, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = seal_all(&db).await {
            tracing::error!(error = %e, "sealing the log failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE) => {}
            _ = stop.changed() => {}
        }
    }
    // What the last moments appended is sealed before the process goes.
    if let Err(e) = seal_all(&db).await {
        tracing::warn!(error = %e, "sealing the log at shutdown failed");
    }
    tracing::debug!("sealer stopped");
}

/// Where the chain and the log first disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The event at this cursor is not what was sealed (a changed row).
    Changed(Cursor),
    /// A seal whose event is not in the log (a deleted row).
    Missing(Cursor),
    /// An event below the sealed head without a seal (an inserted row).
    Unsealed(Cursor),
    /// The head row does not hold the last seal.
    Head,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |c: &Cursor| log::cursor_id(*c);
        match self {
            Mismatch::Changed(c) => write!(f, "the event at {} differs from its seal", at(c)),
            Mismatch::Missing(c) => {
                write!(f, "the event at {} is missing (its seal remains)", at(c))
            }
            Mismatch::Unsealed(c) => {
                write!(
                    f,
                    "the event at {} has no seal (inserted below the head)",
                    at(c)
                )
            }
            Mismatch::Head => write!(f, "the head row does not hold the last seal"),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Events whose seals were checked.
    pub checked: u64,
    /// The sealed head and its hash, as recomputed from the log.
    pub head: Cursor,
    pub head_hash: Hash,
    /// Events after the head, not sealed yet.
    pub unsealed: u64,
    /// The first disagreement, if any.
    pub mismatch: Option<Mismatch>,
}

/// Recomputes the chain from the log and compares it with the seals, in pages (constant
/// memory), calling `progress` with the events checked so far.
pub async fn verify(db: &Db, progress: &dyn Fn(u64)) -> Result<Verification, sqlx::Error> {
    let (head, stored_head) = head(db).await?;
    let mut previous = GENESIS;
    let mut checked = 0u64;
    let mut events_after = Cursor::default();
    let mut seals = Seals::new(db);
    let result = |mismatch, previous, checked| Verification {
        checked,
        head,
        head_hash: previous,
        unsealed: 0,
        mismatch,
    };
    loop {
        let events = log::read_after(db, events_after, BATCH).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            break;
        };
        events_after = last;
        for event in events.iter().filter(|e| e.cursor() <= head) {
            let cursor = event.cursor();
            let hash = chain(&previous, event);
            let mismatch = match seals.next().await? {
                Some((at, _)) if at < cursor => Some(Mismatch::Missing(at)),
                Some((at, _)) if at > cursor => Some(Mismatch::Unsealed(cursor)),
                Some((_, sealed)) if sealed != hash => Some(Mismatch::Changed(cursor)),
                Some(_) => None,
                None => Some(Mismatch::Unsealed(cursor)),
            };
            if mismatch.is_some() {
                return Ok(result(mismatch, previous, checked));
            }
            previous = hash;
            checked += 1;
        }
        progress(checked);
        if last > head {
            break;
        }
    }
    if let Some((at, _)) = seals.next().await? {
        return Ok(result(Some(Mismatch::Missing(at)), previous, checked));
    }
    if previous != stored_head {
        return Ok(result(Some(Mismatch::Head), previous, checked));
    }
    let unsealed = unsealed_after(db, head).await?;
    Ok(Verification {
        unsealed,
        ..result(None, previous, checked)
    })
}

/// The seals in log order, read a page at a time.
struct Seals<'a> {
    db: &'a Db,
    page: std::vec::IntoIter<(Cursor, Hash)>,
    after: Cursor,
    done: bool,
}

impl<'a> Seals<'a> {
    fn new(db: &'a Db) -> Self {
        Self {
            db,
            page: Vec::new().into_iter(),
            after: Cursor::default(),
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<(Cursor, Hash)>, sqlx::Error> {
        if let Some(seal) = self.page.next() {
            return Ok(Some(seal));
        }
        if self.done {
            return Ok(None);
        }
        let rows = match self.db {
            Db::Sqlite { reader, .. } => sqlx::query(
                "SELECT tx_id, position, hash FROM log_seals WHERE position > $1 \
                     ORDER BY position LIMIT $2",
            )
            .bind(self.after.1)
            .bind(BATCH)
            .fetch_all(reader)
            .await?
            .iter()
            .map(seal_row)
            .collect::<Result<Vec<_>, _>>()?,
            Db::Postgres(pool) => sqlx::query(
                "SELECT tx_id, position, hash FROM log_seals \
                     WHERE (tx_id, position) > ($1, $2) ORDER BY tx_id, position LIMIT $3",
            )
            .bind(self.after.0)
            .bind(self.after.1)
            .bind(BATCH)
            .fetch_all(pool)
            .await?
            .iter()
            .map(seal_row)
            .collect::<Result<Vec<_>, _>>()?,
        };
        self.done = (rows.len() as i64) < BATCH;
        if let Some((last, _)) = rows.last() {
            self.after = *last;
        }
        self.page = rows.into_iter();
        Ok(self.page.next())
    }
}

fn seal_row<'r, R>(row: &'r R) -> Result<(Cursor, Hash), sqlx::Error>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok((
        (row.try_get("tx_id")?, row.try_get("position")?),
        to_hash(&hash),
    ))
}

/// How many events come after `head`.
async fn unsealed_after(db: &Db, head: Cursor) -> Result<u64, sqlx::Error> {
    let n: i64 = match db {
        Db::Sqlite { reader, .. } => {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE position > $1")
                .bind(head.1)
                .fetch_one(reader)
                .await?
        }
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE (tx_id, position) > ($1::bigint::text::xid8, $2)",
        )
        .bind(head.0)
        .bind(head.1)
        .fetch_one(pool)
        .await?,
    };
    Ok(n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            position,
            tx_id: 0,
            aggregate_type: "Thread".into(),
            aggregate_id: "t1".into(),
            sequence: position,
            event_type: "ThreadRenamed".into(),
            event_version: "1".into(),
            payload,
            metadata: serde_json::json!({"actor": "a1"}),
            event_id: format!("e{position}"),
            recorded_at: 1_700_000_000_000_000 + position,
        }
    }

    #[test]
    fn a_seal_depends_on_the_event_and_everything_before_it() {
        let a = event(1, serde_json::json!({"title": "one"}));
        let b = event(2, serde_json::json!({"title": "two"}));
        let after_a = chain(&GENESIS, &a);
        let after_b = chain(&after_a, &b);
        assert_eq!(chain(&after_a, &b), after_b, "deterministic");
        let edited = event(1, serde_json::json!({"title": "0ne"}));
        assert_ne!(chain(&GENESIS, &edited), after_a);
        assert_ne!(chain(&chain(&GENESIS, &edited), &b), after_b);
        // The cursor is covered: the same event at another place seals differently.
        assert_ne!(chain(&GENESIS, &event(3, a.payload.clone())), after_a);
    }
}
