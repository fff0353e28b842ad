//! The projector runtime: keeps every projection's tables caught up with the log.
//!
//! Each projection has a checkpoint row (`projection_checkpoints`). A batch reads the events after
//! the checkpoint in log order, folds them into the projection's tables and advances the
//! checkpoint in one transaction, so each event is applied exactly once even across crashes.
//! On PostgreSQL the checkpoint row is locked (`FOR UPDATE`) for the batch, and one node at a time
//! runs the projector (a session advisory lock); the others follow the leader's checkpoints.
//!
//! Commits wake the runner: [`Projector::wake`] in-process, `LISTEN threadline_events` for
//! commits of other nodes (`chat::listen`). A woken runner lingers for [`LINGER`] so that the
//! commits of many streams fold as one batch (a streaming reply commits every few
//! milliseconds, and nobody waits for its chunks in the read models), unless a caller waits for
//! its write ([`Projector::wait_for`]): then it runs at once. A slow poll is only the fallback.
//!
//! # Layout
//! - [`Projector`]: the handle (wake, wait for a cursor, status).
//! - [`run`]: the runner loop; [`catch_up`]: one projection until the head of the log.
//! - [`rebuild`]: rebuilding a projection into shadow tables and swapping them in.
//! - [`verify`]: rebuilding into shadow tables and comparing them with the live tables.

mod coalesce;
pub mod rebuild;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use threadline_projections::{Db, Projection, StoredEvent, Tables, Tx};
use tokio::sync::{Notify, watch};

use crate::store::direct::{self, DirectError, DirectWriter};
use crate::store::keys::KeyRing;
use crate::store::log::{self, Cursor};

/// Events read and applied per transaction.
pub const BATCH_SIZE: i64 = 1000;

/// Most statements one batch folds: a batch stops early after the event that reaches it, so
/// events that carry a whole history (an import, a branch) do not hold SQLite's one writer
/// for long.
pub const MAX_BATCH_STATEMENTS: usize = 2_000;

/// What one batch did: the events it folded, and whether more may be waiting (it read a full
/// batch, or stopped early at [`MAX_BATCH_STATEMENTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folded {
    pub events: u64,
    pub more: bool,
}

/// Folds `events` until [`MAX_BATCH_STATEMENTS`] is reached: the statements, the cursor of the
/// last event folded, and what was folded.
pub(crate) fn fold_prefix(
    events: &[StoredEvent],
    mut fold: impl FnMut(&StoredEvent) -> Result<Vec<threadline_projections::Stmt>, ProjectorError>,
) -> Result<(Vec<threadline_projections::Stmt>, Option<Cursor>, Folded), ProjectorError> {
    let mut stmts = Vec::with_capacity(events.len());
    let mut last = None;
    for (i, event) in events.iter().enumerate() {
        stmts.extend(fold(event)?);
        last = Some(event.cursor());
        if stmts.len() >= MAX_BATCH_STATEMENTS && i + 1 < events.len() {
            let folded = Folded {
                events: i as u64 + 1,
                more: true,
            };
            return Ok((stmts, last, folded));
        }
    }
    let folded = Folded {
        events: events.len() as u64,
        more: events.len() as i64 >= BATCH_SIZE,
    };
    Ok((stmts, last, folded))
}
/// Folds a whole batch with each reply's chunk events coalesced ([`coalesce`]), when its
/// statements stay within [`MAX_BATCH_STATEMENTS`]; otherwise event by event up to that bound
/// ([`fold_prefix`]). Returns what [`fold_prefix`] returns.
pub(crate) fn fold_events(
    events: &[StoredEvent],
    mut fold: impl FnMut(&StoredEvent) -> Result<Vec<threadline_projections::Stmt>, ProjectorError>,
) -> Result<(Vec<threadline_projections::Stmt>, Option<Cursor>, Folded), ProjectorError> {
    let Some(last) = events.last().map(StoredEvent::cursor) else {
        return fold_prefix(events, fold);
    };
    let mut stmts = Vec::with_capacity(events.len());
    for event in coalesce::coalesce(events) {
        stmts.extend(fold(&event)?);
        if stmts.len() > MAX_BATCH_STATEMENTS {
            return fold_prefix(events, fold);
        }
    }
    let folded = Folded {
        events: events.len() as u64,
        more: events.len() as i64 >= BATCH_SIZE,
    };
    Ok((stmts, Some(last), folded))
}

/// How long a woken runner gathers further commits before it folds them, when no caller is
/// waiting for one.
pub const LINGER: Duration = Duration::from_millis(10);

/// How long a runner sleeps when nothing wakes it.
const FALLBACK_POLL: Duration = Duration::from_secs(1);
/// The advisory lock that elects the node running the projectors.
const LEADER_LOCK: i64 = 0x7468_726c_7072_6f6a;

/// Why the projector failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open sealed values: {0}")]
    Keys(#[from] crate::store::keys::KeyError),
    #[error(transparent)]
    Direct(#[from] DirectError),
    #[error(transparent)]
    Projection(#[from] threadline_projections::ProjectionError),
    #[error("unknown projection {0:?}")]
    UnknownProjection(String),
}

/// A projection's progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub version: i64,
    pub tx_id: i64,
    pub position: i64,
}

/// Handle on the projector: shared by the runner, the command handlers and the CLI.
#[derive(Clone)]
pub struct Projector {
    db: Db,
    keys: KeyRing,
    projections: Arc<Vec<Box<dyn Projection>>>,
    wake: Arc<Notify>,
    /// A caller waits for a write: run now, do not linger.
    urgent: Arc<Notify>,
    /// The cursor every projection has reached (the minimum over projections).
    reached: watch::Sender<Cursor>,
    /// SQLite: the live batches' writer thread, and the checkpoints it last committed.
    direct: Option<Direct>,
}

/// SQLite's live batches: written on the [`DirectWriter`] thread, one hand-off each. The
/// checkpoints the runner committed last are kept, so a batch reads none before it folds; the
/// batch checks them inside its transaction and starts over when something else (a rebuild,
/// another process) moved them.
#[derive(Clone)]
struct Direct {
    writer: DirectWriter,
    checkpoints: Arc<std::sync::Mutex<Option<Checkpoints>>>,
}

/// Each projection's name and the cursor its checkpoint holds.
type Checkpoints = Vec<(String, Cursor)>;

impl Projector {
    /// A projector over every projection of the product.
    pub fn new(db: Db, keys: KeyRing) -> Self {
        Self::with_projections(db, keys, threadline_projections::all())
    }

    /// A projector over the given projections.
    pub fn with_projections(db: Db, keys: KeyRing, projections: Vec<Box<dyn Projection>>) -> Self {
        let direct = match &db {
            Db::Sqlite { writer, .. } => match DirectWriter::for_pool(writer) {
                Ok(writer) => writer.map(|writer| Direct {
                    writer,
                    checkpoints: Arc::default(),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the SQLite writer thread; batches go through the pool");
                    None
                }
            },
            Db::Postgres(_) => None,
        };
        Self {
            direct,
            db,
            keys,
            projections: Arc::new(projections),
            wake: Arc::new(Notify::new()),
            urgent: Arc::new(Notify::new()),
            reached: watch::Sender::new(Cursor::default()),
        }
    }

    /// Forgets the checkpoints the live batches remember, after something else moved them (a
    /// rebuild): the next batch reads them.
    pub(crate) fn forget_checkpoints(&self) {
        if let Some(direct) = &self.direct
            && let Ok(mut known) = direct.checkpoints.lock()
        {
            *known = None;
        }
    }

    /// The projections this projector runs.
    pub fn projections(&self) -> &[Box<dyn Projection>] {
        &self.projections
    }

    /// Wakes the runner (after a local commit); it folds what has committed within
    /// [`LINGER`].
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until every projection has applied the event at `cursor`, at most `timeout`.
    /// Returns whether it got there. The runner runs at once for it.
    pub async fn wait_for(&self, cursor: Cursor, timeout: Duration) -> bool {
        let mut rx = self.reached.subscribe();
        if *rx.borrow_and_update() >= cursor {
            return true;
        }
        self.urgent.notify_one();
        self.wake();
        tokio::time::timeout(timeout, rx.wait_for(|reached| *reached >= cursor))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Creates the tables and checkpoints of new projections. A projection whose stored
    /// version differs from its code is rebuilt from position 0 into shadow tables and swapped
    /// in (see [`rebuild`]) before this returns, so a server never reads a half-built table.
    pub async fn prepare(&self) -> Result<(), ProjectorError> {
        let mut stale = Vec::new();
        let mut tx = self.db.begin().await?;
        lock_checkpoints(&mut tx).await?;
        for p in self.projections.iter() {
            match checkpoint_row(&mut tx, p.name()).await? {
                Some((version, _)) if version == p.version() => {}
                Some((version, _)) => {
                    tracing::warn!(
                        projection = p.name(),
                        from = version,
                        to = p.version(),
                        "projection version changed; rebuilding from the start of the log"
                    );
                    stale.push(p.name());
                }
                None => {
                    for ddl in p.ddl(self.db.backend(), &Tables::live().on(self.db.backend())) {
                        tx.execute_sql(&ddl).await?;
                    }
                    set_checkpoint(&mut tx, p.name(), p.version(), Cursor::default()).await?;
                }
            }
        }
        tx.commit().await?;
        if stale.is_empty() {
            return Ok(());
        }
        let stale: Vec<String> = stale.into_iter().map(str::to_owned).collect();
        for report in rebuild::rebuild_all(self, &stale, &|_| {}).await? {
            tracing::info!(
                projection = report.name,
                events = report.events,
                "projection rebuilt"
            );
        }
        Ok(())
    }

    /// Every projection's checkpoint.
    pub async fn status(&self) -> Result<Vec<Status>, ProjectorError> {
        let rows: Vec<(String, i64, i64, i64)> = threadline_projections::on_read!(&self.db, pool =>
            sqlx::query_as("SELECT name, version, tx_id, position FROM projection_checkpoints ORDER BY name")
                .fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(name, version, tx_id, position)| Status {
                name,
                version,
                tx_id,
                position,
            })
            .collect())
    }

    /// Tells [`Projector::wait_for`] callers that every projection has reached `cursor`.
    fn reach(&self, cursor: Cursor) {
        self.reached.send_if_modified(|reached| {
            let advanced = cursor > *reached;
            if advanced {
                *reached = cursor;
            }
            advanced
        });
    }

    /// Publishes the slowest projection's checkpoint, as stored, to [`Projector::wait_for`]
    /// callers (a node that does not run the projectors follows the leader's this way).
    async fn publish(&self) -> Result<(), ProjectorError> {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        let min = self
            .status()
            .await?
            .into_iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| (s.tx_id, s.position))
            .min()
            .unwrap_or_default();
        self.reach(min);
        Ok(())
    }

    /// Applies batches to `projection` until it has reached the head of the log. Returns the
    /// number of events applied.
    pub async fn catch_up(&self, projection: &dyn Projection) -> Result<u64, ProjectorError> {
        let mut applied = 0;
        loop {
            let folded = apply_batch(
                self,
                projection,
                &Tables::live().on(self.db.backend()),
                true,
            )
            .await?;
            applied += folded.events;
            if !folded.more {
                return Ok(applied);
            }
        }
    }

    /// Brings every projection to the head of the log, reading each batch of events once and
    /// applying it to all projections in one transaction. Returns the events read.
    pub async fn catch_up_all(&self) -> Result<u64, ProjectorError> {
        let mut read = 0;
        loop {
            let (folded, reached) = match (&self.db, &self.direct) {
                (Db::Sqlite { writer, .. }, Some(direct)) => {
                    apply_batch_direct(&self.db, writer, direct, &self.keys, &self.projections)
                        .await?
                }
                _ => apply_batch_all(&self.db, &self.keys, &self.projections).await?,
            };
            read += folded.events;
            self.reach(reached);
            if !folded.more {
                return Ok(read);
            }
        }
    }

    /// Runs the projector until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut leader = Leadership::new(&self.db);
        loop {
            if *stop.borrow() {
                break;
            }
            // The leader knows what it reached; the others read the leader's checkpoints.
            let result = async {
                if leader.ensure().await? {
                    self.catch_up_all().await.map(drop)
                } else {
                    self.publish().await
                }
            }
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "projector batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::select! {
                _ = self.wake.notified() => {
                    tokio::select! {
                        _ = self.urgent.notified() => {}
                        _ = tokio::time::sleep(LINGER) => {}
                        _ = stop.changed() => {}
                    }
                }
                _ = self.urgent.notified() => {}
                _ = tokio::time::sleep(FALLBACK_POLL) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!("projector stopped");
    }

    /// The database this projector writes to.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The next batch of events after `from`, their sealed values opened: on SQLite read on the
/// projector's writer thread (`direct`) when it has one, in one hand-off.
pub(crate) async fn read_batch(
    db: &Db,
    direct: Option<&DirectWriter>,
    keys: &KeyRing,
    from: Cursor,
) -> Result<Vec<StoredEvent>, ProjectorError> {
    let mut events = match (db, direct) {
        (Db::Sqlite { .. }, Some(direct)) => {
            direct
                .run(move |conn| Ok(log::read_after_on(conn, from, BATCH_SIZE)?))
                .await?
        }
        _ => log::read_after(db, from, BATCH_SIZE).await?,
    };
    keys.open_events(&mut events).await?;
    Ok(events)
}

impl Projector {
    /// [`read_batch`] with this projector's database, writer thread and keys.
    pub(crate) async fn read_batch(
        &self,
        from: Cursor,
    ) -> Result<Vec<StoredEvent>, ProjectorError> {
        let direct = self.direct.as_ref().map(|d| &d.writer);
        read_batch(&self.db, direct, &self.keys, from).await
    }
}

/// Applies the next batch of events after `projection`'s checkpoint to `tables`, advancing the
/// checkpoint in the same transaction. Returns how many events it read.
pub(crate) async fn apply_batch(
    projector: &Projector,
    projection: &dyn Projection,
    tables: &Tables,
    notify: bool,
) -> Result<Folded, ProjectorError> {
    let mut tx = projector.db.begin().await?;
    let Some((version, from)) = lock_checkpoint(&mut tx, projection.name()).await? else {
        return Err(ProjectorError::UnknownProjection(
            projection.name().to_owned(),
        ));
    };
    let events = projector.read_batch(from).await?;
    let (stmts, last, folded) =
        fold_events(&events, |event| Ok(projection.statements(event, tables)?))?;
    let Some(last) = last else {
        return Ok(folded);
    };
    tx.execute_batch(&stmts).await?;
    set_checkpoint(&mut tx, projection.name(), version, last).await?;
    if notify && let Tx::Postgres(pg) = &mut tx {
        sqlx::query("SELECT pg_notify('threadline_checkpoints', $1)")
            .bind(projection.name())
            .execute(&mut **pg)
            .await?;
    }
    tx.commit().await?;
    Ok(folded)
}

/// One batch for every projection: lock all checkpoints (one query), read the events after
/// the slowest, fold each event into the projections that have not applied it, advance every
/// checkpoint that is behind the batch (one statement). Returns what was folded and the
/// cursor every projection has reached now.
async fn apply_batch_all(
    db: &Db,
    keys: &KeyRing,
    projections: &[Box<dyn Projection>],
) -> Result<(Folded, Cursor), ProjectorError> {
    let mut tx = db.begin().await?;
    let stored = lock_all_checkpoints(&mut tx).await?;
    let mut checkpoints = Vec::with_capacity(projections.len());
    for p in projections {
        match stored.iter().find(|(name, _)| name == p.name()) {
            Some((_, cursor)) => checkpoints.push(*cursor),
            None => return Err(ProjectorError::UnknownProjection(p.name().to_owned())),
        }
    }
    let nothing = Folded {
        events: 0,
        more: false,
    };
    let Some(from) = checkpoints.iter().copied().min() else {
        return Ok((nothing, Cursor::default()));
    };
    let events = read_batch(db, None, keys, from).await?;
    let (stmts, last, folded) = fold_all(db, projections, &checkpoints, &events)?;
    let Some(last) = last else {
        return Ok((folded, from));
    };
    tx.execute_batch(&stmts).await?;
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    advance_checkpoints(&mut tx, &names, last).await?;
    if let Tx::Postgres(pg) = &mut tx {
        sqlx::query("SELECT pg_notify('threadline_checkpoints', '')")
            .execute(&mut **pg)
            .await?;
    }
    tx.commit().await?;
    Ok((folded, reached_after(&checkpoints, last)))
}

/// The cursor every projection has reached once a batch up to `last` has committed.
fn reached_after(checkpoints: &[Cursor], last: Cursor) -> Cursor {
    checkpoints
        .iter()
        .map(|c| (*c).max(last))
        .min()
        .unwrap_or(last)
}

/// Folds `events` into every projection that has not applied them (`checkpoints` in the order
/// of `projections`). Returns what [`fold_prefix`] returns.
fn fold_all(
    db: &Db,
    projections: &[Box<dyn Projection>],
    checkpoints: &[Cursor],
    events: &[StoredEvent],
) -> Result<(Vec<threadline_projections::Stmt>, Option<Cursor>, Folded), ProjectorError> {
    let live = Tables::live().on(db.backend());
    let fold = |event: &StoredEvent| {
        let mut stmts = Vec::new();
        for (p, cursor) in projections.iter().zip(checkpoints) {
            if event.cursor() > *cursor {
                stmts.extend(p.statements(event, &live)?);
            }
        }
        Ok(stmts)
    };
    // Coalesced events carry the cursor of the last one they replace: only when every
    // projection is at the same place does that not matter.
    let from = checkpoints.iter().copied().min().unwrap_or_default();
    if checkpoints.iter().all(|c| *c == from) {
        fold_events(events, fold)
    } else {
        fold_prefix(events, fold)
    }
}

/// [`apply_batch_all`] on SQLite through the [`DirectWriter`]: the checkpoints come from the
/// runner's memory (or the writer thread), the events from the writer thread, the fold runs on
/// this task, and the writer thread checks the checkpoints, runs the statements and moves the
/// checkpoints in one transaction — one hand-off for the whole batch.
async fn apply_batch_direct(
    db: &Db,
    lock: &sqlx::SqlitePool,
    direct: &Direct,
    keys: &KeyRing,
    projections: &[Box<dyn Projection>],
) -> Result<(Folded, Cursor), ProjectorError> {
    let known = direct
        .checkpoints
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let stored = match known {
        Some(stored) => stored,
        // Read on the writer thread's own connection, the one that checks them below: a
        // reading there agrees with the check unless something moved them in between.
        None => direct.writer.run(|conn| Ok(checkpoints_on(conn)?)).await?,
    };
    let mut checkpoints = Vec::with_capacity(projections.len());
    for p in projections {
        match stored.iter().find(|(name, _)| name == p.name()) {
            Some((_, cursor)) => checkpoints.push(*cursor),
            None => return Err(ProjectorError::UnknownProjection(p.name().to_owned())),
        }
    }
    let Some(from) = checkpoints.iter().copied().min() else {
        return Ok((
            Folded {
                events: 0,
                more: false,
            },
            Cursor::default(),
        ));
    };
    let events = read_batch(db, Some(&direct.writer), keys, from).await?;
    let (stmts, last, folded) = fold_all(db, projections, &checkpoints, &events)?;
    let Some(last) = last else {
        return Ok((folded, from));
    };
    let names: Vec<String> = projections.iter().map(|p| p.name().to_owned()).collect();
    let expected = stored.clone();
    let committed = direct
        .writer
        .write(lock, move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = checkpoints_on(&tx)?;
            if !same_checkpoints(&now, &expected) {
                return Ok(Some(now));
            }
            for stmt in &stmts {
                direct::execute(&tx, stmt)?;
            }
            let mut advance = tx.prepare_cached(
                "UPDATE projection_checkpoints SET tx_id = ?1, position = ?2, updated_at = ?3 \
                 WHERE name = ?4 AND (tx_id < ?1 OR (tx_id = ?1 AND position < ?2))",
            )?;
            let at = chrono::Utc::now().timestamp_micros();
            for name in &names {
                advance.execute(rusqlite::params![last.0, last.1, at, name])?;
            }
            drop(advance);
            tx.commit()?;
            Ok(None)
        })
        .await;
    let mut known = direct.checkpoints.lock().ok();
    match committed {
        Ok(None) => {
            let advanced = stored
                .into_iter()
                .map(|(name, cursor)| {
                    let moves = projections.iter().any(|p| p.name() == name);
                    let cursor = if moves { cursor.max(last) } else { cursor };
                    (name, cursor)
                })
                .collect();
            if let Some(known) = known.as_mut() {
                **known = Some(advanced);
            }
            Ok((folded, reached_after(&checkpoints, last)))
        }
        // Something else moved a checkpoint: fold anew from where they are now.
        Ok(Some(now)) => {
            if let Some(known) = known.as_mut() {
                **known = Some(now);
            }
            Ok((
                Folded {
                    events: 0,
                    more: true,
                },
                from,
            ))
        }
        Err(e) => {
            if let Some(known) = known.as_mut() {
                **known = None;
            }
            Err(e.into())
        }
    }
}

/// Every checkpoint, read on a `rusqlite` connection.
fn checkpoints_on(conn: &rusqlite::Connection) -> Result<Checkpoints, rusqlite::Error> {
    conn.prepare_cached("SELECT name, tx_id, position FROM projection_checkpoints")?
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
        .collect()
}

/// Whether two readings of the checkpoints agree (in any order).
fn same_checkpoints(a: &[(String, Cursor)], b: &[(String, Cursor)]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Every checkpoint, read in one query and, on PostgreSQL, locked for the transaction.
async fn lock_all_checkpoints(tx: &mut Tx<'_>) -> Result<Checkpoints, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as("SELECT name, tx_id, position FROM projection_checkpoints")
                .fetch_all(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_as("SELECT name, tx_id, position FROM projection_checkpoints FOR UPDATE")
                .fetch_all(&mut **t)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(name, tx_id, position)| (name, (tx_id, position)))
        .collect())
}

/// Moves the checkpoints of `names` that are behind `cursor` to it, in one statement (a
/// projection already past it, say just rebuilt, keeps its place).
async fn advance_checkpoints(
    tx: &mut Tx<'_>,
    names: &[&str],
    cursor: Cursor,
) -> Result<(), sqlx::Error> {
    let mut sql = String::from(
        "UPDATE projection_checkpoints SET tx_id = $1, position = $2, updated_at = $3 \
         WHERE (tx_id < $1 OR (tx_id = $1 AND position < $2)) AND name IN (",
    );
    let mut args: Vec<threadline_projections::Arg> = vec![
        cursor.0.into(),
        cursor.1.into(),
        chrono::Utc::now().timestamp_micros().into(),
    ];
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 4));
        args.push((*name).into());
    }
    sql.push(')');
    tx.execute(&threadline_projections::Stmt::new(sql, args))
        .await
        .map(drop)
}

async fn lock_checkpoints(tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(pg) = tx {
        sqlx::query("LOCK TABLE projection_checkpoints IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut **pg)
            .await?;
    }
    Ok(())
}

async fn checkpoint_row(tx: &mut Tx<'_>, name: &str) -> Result<Option<(i64, Cursor)>, sqlx::Error> {
    let sql = "SELECT version, tx_id, position FROM projection_checkpoints WHERE name = $1";
    let row = match tx {
        Tx::Sqlite(t) => sqlx::query(sql)
            .bind(name)
            .fetch_optional(&mut **t)
            .await?
            .map(|r| (r.get::<i64, _>(0), (r.get::<i64, _>(1), r.get::<i64, _>(2)))),
        Tx::Postgres(t) => sqlx::query(sql)
            .bind(name)
            .fetch_optional(&mut **t)
            .await?
            .map(|r| (r.get::<i64, _>(0), (r.get::<i64, _>(1), r.get::<i64, _>(2)))),
    };
    Ok(row)
}

/// Reads a checkpoint and, on PostgreSQL, locks its row for the rest of the transaction.
pub(crate) async fn lock_checkpoint(
    tx: &mut Tx<'_>,
    name: &str,
) -> Result<Option<(i64, Cursor)>, sqlx::Error> {
    if let Tx::Postgres(pg) = tx {
        sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
            .bind(name)
            .execute(&mut **pg)
            .await?;
    }
    checkpoint_row(tx, name).await
}

pub(crate) async fn set_checkpoint(
    tx: &mut Tx<'_>,
    name: &str,
    version: i64,
    cursor: Cursor,
) -> Result<(), sqlx::Error> {
    tx.execute(&threadline_projections::Stmt::new(
        "INSERT INTO projection_checkpoints (name, version, tx_id, position, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, tx_id = excluded.tx_id, \
         position = excluded.position, updated_at = excluded.updated_at",
        vec![
            name.into(),
            version.into(),
            cursor.0.into(),
            cursor.1.into(),
            chrono::Utc::now().timestamp_micros().into(),
        ],
    ))
    .await
    .map(drop)
}

/// Which node runs the projectors. SQLite has one process and is always the leader; on
/// PostgreSQL the node holding a session advisory lock is, and another takes over within a
/// poll interval of its connection dropping.
///
/// The held connection is checked at most once per [`FALLBACK_POLL`], not on every wake-up:
/// leadership only saves work (every batch locks the checkpoint rows, so two nodes that both
/// think they lead still apply each event once).
enum Leadership {
    Always,
    Postgres {
        pool: sqlx::PgPool,
        held: Option<(
            sqlx::pool::PoolConnection<sqlx::Postgres>,
            std::time::Instant,
        )>,
    },
}

impl Leadership {
    fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite { .. } => Leadership::Always,
            Db::Postgres(pool) => Leadership::Postgres {
                pool: pool.clone(),
                held: None,
            },
        }
    }

    /// Whether this node leads now (trying to become leader if it does not).
    async fn ensure(&mut self) -> Result<bool, sqlx::Error> {
        let Leadership::Postgres { pool, held } = self else {
            return Ok(true);
        };
        if let Some((conn, checked)) = held {
            if checked.elapsed() < FALLBACK_POLL {
                return Ok(true);
            }
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                *checked = std::time::Instant::now();
                return Ok(true);
            }
            tracing::warn!("lost the projector leader connection");
            *held = None;
        }
        let mut conn = pool.acquire().await?;
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if won {
            tracing::info!("this node now runs the projectors");
            *held = Some((conn, std::time::Instant::now()));
        }
        Ok(won)
    }
}
