//! Rebuilding projections from position 0 without downtime.
//!
//! The projections are folded into shadow tables (`<table>__rebuild`) while the live tables keep
//! answering: one pass over the log for every projection rebuilt together, each event read and
//! decoded once (on SQLite each batch is written in one hand-off to the projector's writer
//! thread). Then one transaction takes their checkpoint locks, applies the events that arrived
//! meanwhile, drops the live tables, renames the shadow tables into their place and sets the
//! checkpoints. Readers see the old tables or the new ones, never a mix.

use threadline_projections::{Db, Projection, Stmt, Tables, Tx};

use super::{
    Folded, Projector, ProjectorError, direct, fold_events, lock_checkpoint, set_checkpoint,
};
use crate::store::log::Cursor;

/// A cursor past every event: folding "until the end of the log".
pub(crate) const END: Cursor = (i64::MAX, i64::MAX);

/// What a rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    pub name: String,
    pub events: u64,
    pub seconds: f64,
}

/// Rebuilds the projection `name`, calling `progress` with the number of events folded so far.
pub async fn rebuild(
    projector: &Projector,
    name: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RebuildReport, ProjectorError> {
    let mut reports = rebuild_all(projector, &[name.to_owned()], progress).await?;
    reports
        .pop()
        .ok_or_else(|| ProjectorError::UnknownProjection(name.to_owned()))
}

/// Rebuilds the projections `names` in one pass over the log, calling `progress` with the
/// number of events folded so far. Each report names one projection; they share the pass's
/// events and time.
pub async fn rebuild_all(
    projector: &Projector,
    names: &[String],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<RebuildReport>, ProjectorError> {
    let started = std::time::Instant::now();
    let mut projections: Vec<&dyn Projection> = Vec::with_capacity(names.len());
    for name in names {
        let projection = projector
            .projections()
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ProjectorError::UnknownProjection(name.clone()))?;
        projections.push(projection.as_ref());
    }
    let db = projector.db();
    let nonce = chrono::Utc::now().timestamp_millis().to_string();
    let shadow = Tables::shadow(&nonce).on(db.backend());

    let mut tx = db.begin().await?;
    for projection in &projections {
        create_fresh(&mut tx, db, *projection, &shadow).await?;
    }
    tx.commit().await?;

    // Each batch is written while the next one is read and folded: the database works on one
    // while this task decodes the other. The read is asked for first, so on SQLite's writer
    // thread it runs before the write and the fold overlaps the write.
    let mut cursor = Cursor::default();
    let mut events = 0u64;
    let mut unwritten = Vec::new();
    loop {
        let (next, written) = tokio::join!(
            fold_next(projector, &projections, &shadow, &mut cursor, END),
            write_shadow(projector, std::mem::take(&mut unwritten)),
        );
        written?;
        let (stmts, folded) = next?;
        unwritten = stmts;
        events += folded.events;
        progress(events);
        if !folded.more {
            break;
        }
    }
    write_shadow(projector, unwritten).await?;

    let mut tx = db.begin().await?;
    for name in names {
        if lock_checkpoint(&mut tx, name).await?.is_none() {
            return Err(ProjectorError::UnknownProjection(name.clone()));
        }
    }
    loop {
        let folded =
            fold_batch(&mut tx, projector, &projections, &shadow, &mut cursor, END).await?;
        events += folded.events;
        if folded.events == 0 {
            break;
        }
    }
    let live = Tables::live().on(db.backend());
    for projection in &projections {
        for table in projection.tables() {
            tx.execute_sql(&format!("DROP TABLE IF EXISTS {}", live.name(table)))
                .await?;
            tx.execute_sql(&format!(
                "ALTER TABLE {} RENAME TO {}",
                shadow.name(table),
                live.name(table)
            ))
            .await?;
        }
        set_checkpoint(&mut tx, projection.name(), projection.version(), cursor).await?;
    }
    tx.commit().await?;
    projector.forget_checkpoints();
    progress(events);
    let seconds = started.elapsed().as_secs_f64();
    Ok(names
        .iter()
        .map(|name| RebuildReport {
            name: name.clone(),
            events,
            seconds,
        })
        .collect())
}

/// Writes a batch of statements into the shadow tables in a transaction of its own: on SQLite
/// in one hand-off to the projector's writer thread, elsewhere through the pool.
async fn write_shadow(projector: &Projector, stmts: Vec<Stmt>) -> Result<(), ProjectorError> {
    if stmts.is_empty() {
        return Ok(());
    }
    if let (Db::Sqlite { writer, .. }, Some(thread)) = (projector.db(), &projector.direct) {
        thread
            .writer
            .write(writer, move |conn| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                for stmt in &stmts {
                    direct::execute(&tx, stmt)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
        return Ok(());
    }
    let mut tx = projector.db().begin().await?;
    tx.execute_batch(&stmts).await?;
    tx.commit().await?;
    Ok(())
}

async fn create_fresh(
    tx: &mut Tx<'_>,
    db: &Db,
    projection: &dyn Projection,
    tables: &Tables,
) -> Result<(), sqlx::Error> {
    for table in projection.tables() {
        tx.execute_sql(&format!("DROP TABLE IF EXISTS {}", tables.name(table)))
            .await?;
    }
    for ddl in projection.ddl(db.backend(), tables) {
        tx.execute_sql(&ddl).await?;
    }
    Ok(())
}

/// Reads the next batch of events after `cursor`, none past `until`, folds it into every
/// projection's `tables` and moves `cursor` to the last event folded. Returns the statements.
async fn fold_next(
    projector: &Projector,
    projections: &[&dyn Projection],
    tables: &Tables,
    cursor: &mut Cursor,
    until: Cursor,
) -> Result<(Vec<Stmt>, Folded), ProjectorError> {
    let mut events = projector.read_batch(*cursor).await?;
    events.retain(|event| event.cursor() <= until);
    let (stmts, last, folded) = fold_events(&events, |event| {
        let mut stmts = Vec::new();
        for projection in projections {
            stmts.extend(projection.statements(event, tables)?);
        }
        Ok(stmts)
    })?;
    if let Some(last) = last {
        *cursor = last;
    }
    Ok((stmts, folded))
}

/// [`fold_next`], written within `tx`.
pub(crate) async fn fold_batch(
    tx: &mut Tx<'_>,
    projector: &Projector,
    projections: &[&dyn Projection],
    tables: &Tables,
    cursor: &mut Cursor,
    until: Cursor,
) -> Result<Folded, ProjectorError> {
    let (stmts, folded) = fold_next(projector, projections, tables, cursor, until).await?;
    tx.execute_batch(&stmts).await?;
    Ok(folded)
}

/// Every row of `table`, each rendered as text (`column=value|…`, the values as
/// [`super::verify`] renders them) and sorted: for comparing a rebuild with the live tables.
pub async fn dump_table(db: &Db, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let shape = super::verify::Shape::read(db, table).await?;
    let rows = super::verify::rendered_rows(db, &shape, table).await?;
    let mut rows: Vec<String> = rows
        .iter()
        .map(|row| {
            shape
                .columns()
                .iter()
                .zip(row)
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    Ok(rows)
}
