//! Rebuilding a projection from position 0 without downtime.
//!
//! The projection is folded into shadow tables (`<table>__rebuild`) while the live tables keep
//! answering. Then one transaction takes the projection's checkpoint lock, applies the events
//! that arrived meanwhile, drops the live tables, renames the shadow tables into their place and
//! sets the checkpoint. Readers see the old tables or the new ones, never a mix.

use threadline_projections::{Db, Projection, Tables, Tx};

use super::{
    Folded, Projector, ProjectorError, fold_events, lock_checkpoint, read_batch, set_checkpoint,
};
use crate::store::keys::KeyRing;
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
    let started = std::time::Instant::now();
    let projection = projector
        .projections()
        .iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| ProjectorError::UnknownProjection(name.to_owned()))?;
    let db = projector.db();
    let nonce = chrono::Utc::now().timestamp_millis().to_string();
    let shadow = Tables::shadow(&nonce).on(db.backend());

    let mut tx = db.begin().await?;
    create_fresh(&mut tx, db, projection.as_ref(), &shadow).await?;
    tx.commit().await?;

    let mut cursor = Cursor::default();
    let mut events = 0u64;
    loop {
        let mut tx = db.begin().await?;
        let folded = fold_batch(
            &mut tx,
            db,
            projector.keys(),
            projection.as_ref(),
            &shadow,
            &mut cursor,
            END,
        )
        .await?;
        tx.commit().await?;
        events += folded.events;
        progress(events);
        if !folded.more {
            break;
        }
    }

    let mut tx = db.begin().await?;
    if lock_checkpoint(&mut tx, name).await?.is_none() {
        return Err(ProjectorError::UnknownProjection(name.to_owned()));
    }
    loop {
        let folded = fold_batch(
            &mut tx,
            db,
            projector.keys(),
            projection.as_ref(),
            &shadow,
            &mut cursor,
            END,
        )
        .await?;
        events += folded.events;
        if folded.events == 0 {
            break;
        }
    }
    let live = Tables::live().on(db.backend());
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
    set_checkpoint(&mut tx, name, projection.version(), cursor).await?;
    tx.commit().await?;
    progress(events);
    Ok(RebuildReport {
        name: name.to_owned(),
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
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

/// Folds the next batch of events after `cursor`, none past `until`, into `tables` and moves
/// `cursor` to the last event folded.
pub(crate) async fn fold_batch(
    tx: &mut Tx<'_>,
    db: &Db,
    keys: &KeyRing,
    projection: &dyn Projection,
    tables: &Tables,
    cursor: &mut Cursor,
    until: Cursor,
) -> Result<Folded, ProjectorError> {
    let mut events = read_batch(db, keys, *cursor).await?;
    events.retain(|event| event.cursor() <= until);
    let (stmts, last, folded) =
        fold_events(&events, |event| Ok(projection.statements(event, tables)?))?;
    tx.execute_batch(&stmts).await?;
    if let Some(last) = last {
        *cursor = last;
    }
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
