//! `threadline events tail|export`: the log as NDJSON, one event per line, in log order.
//!
//! Each line holds the event's cursor (`"{tx}.{position}"`), position, transaction id, event
//! id, stream (`aggregate_type`, `aggregate_id`, `sequence`), type, version, time (RFC 3339)
//! and its payload and metadata exactly as stored (before any upcaster). The log is read a
//! page at a time, so memory stays constant however long it is; progress goes to stderr.

use std::io::Write;
use std::time::Duration;

use threadline_projections::{Db, StoredEvent};

use super::{EventFilter, EventsCommand, StorageArgs};
use crate::store::keys::KeyRing;
use crate::store::log::{self, Cursor, Direction, Filter};

/// Events read per page.
const PAGE: i64 = 1000;

/// How many events `tail` shows without `--from`.
const TAIL: i64 = 10;

/// How often `tail --follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// The end of the log, for a range without an upper bound.
const END: Cursor = (i64::MAX, i64::MAX);

/// Runs an events subcommand.
pub async fn run(
    storage: StorageArgs,
    command: EventsCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let (db, keys) = storage.open().await?;
    match command {
        EventsCommand::Tail {
            from,
            follow,
            filter,
        } => tail(&db, &keys, from.as_deref(), follow, &filter.into()).await,
        EventsCommand::Export { from, to, filter } => {
            export(&db, &keys, from.as_deref(), to.as_deref(), &filter.into()).await
        }
    }
}

impl From<EventFilter> for Filter {
    fn from(f: EventFilter) -> Self {
        Filter {
            types: f.types,
            account: f.account,
        }
    }
}

async fn tail(
    db: &Db,
    keys: &KeyRing,
    from: Option<&str>,
    follow: bool,
    filter: &Filter,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = match from {
        Some(from) => position_arg(db, from).await?,
        None => {
            let newest = read(
                db,
                keys,
                (Cursor::default(), END),
                filter,
                Direction::Newest,
                TAIL,
            )
            .await?;
            write_lines(&mut out, &newest)?;
            // Without matches, the next ones are those after the head.
            match newest.last() {
                Some(e) => e.cursor(),
                None => log::head(db).await?,
            }
        }
    };
    loop {
        let page = read(db, keys, (after, END), filter, Direction::Forward, PAGE).await?;
        write_lines(&mut out, &page)?;
        if let Some(last) = page.last() {
            after = last.cursor();
        }
        if (page.len() as i64) < PAGE {
            if !follow {
                return Ok(());
            }
            // A filtered page may be empty while the log moved on: skip what was scanned.
            let head = log::head(db).await?;
            if page.is_empty() && head > after {
                after = head;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

async fn export(
    db: &Db,
    keys: &KeyRing,
    from: Option<&str>,
    to: Option<&str>,
    filter: &Filter,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut after = match from {
        Some(from) => {
            let (tx, position) = position_arg(db, from).await?;
            (tx, position - 1)
        }
        None => Cursor::default(),
    };
    let until = match to {
        Some(to) => position_arg(db, to).await?,
        None => log::head(db).await?,
    };
    let total = log::count_range(db, after, until, filter).await?.max(0) as u64;
    let bar = super::progress::bar(total, "export");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = 0u64;
    loop {
        let page = read(db, keys, (after, until), filter, Direction::Forward, PAGE).await?;
        write_lines(&mut out, &page)?;
        written += page.len() as u64;
        bar.set_position(written);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.cursor(),
            _ => break,
        }
    }
    bar.finish_and_clear();
    out.flush()?;
    eprintln!("exported {written} events");
    Ok(())
}

/// A page of matching events in `(after, until]`, their sealed values opened (an erased
/// account's read as redactions).
async fn read(
    db: &Db,
    keys: &KeyRing,
    (after, until): (Cursor, Cursor),
    filter: &Filter,
    direction: Direction,
    limit: i64,
) -> Result<Vec<threadline_projections::StoredEvent>, Box<dyn std::error::Error>> {
    let mut events = log::read_range(db, after, until, filter, direction, limit).await?;
    keys.open_events(&mut events).await?;
    Ok(events)
}

/// A log position on the command line: `TX.POSITION` (a cursor), or `POSITION` alone (on
/// PostgreSQL the event at that position names its transaction).
async fn position_arg(db: &Db, arg: &str) -> Result<Cursor, Box<dyn std::error::Error>> {
    if arg.contains('.') {
        return log::parse_cursor(arg)
            .ok_or_else(|| format!("{arg:?} is not a log position (TX.POSITION)").into());
    }
    let position =
        log::unsigned(arg).ok_or_else(|| format!("{arg:?} is not a log position (a number)"))?;
    if position == 0 {
        return Ok(Cursor::default());
    }
    log::cursor_at(db, position)
        .await?
        .ok_or_else(|| format!("no event at position {position}").into())
}

/// Writes one NDJSON line per event and flushes them.
fn write_lines(out: &mut impl Write, events: &[StoredEvent]) -> std::io::Result<()> {
    for event in events {
        serde_json::to_writer(&mut *out, &line(event))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// One event as a line of the export (borrowing the event: no copy of its payload).
#[derive(serde::Serialize)]
pub struct Line<'a> {
    cursor: String,
    position: i64,
    tx_id: i64,
    event_id: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    #[serde(rename = "type")]
    event_type: &'a str,
    version: &'a str,
    recorded_at: Option<String>,
    payload: &'a serde_json::Value,
    metadata: &'a serde_json::Value,
}

/// One event as a line of the export.
pub fn line(event: &StoredEvent) -> Line<'_> {
    Line {
        cursor: log::cursor_id(event.cursor()),
        position: event.position,
        tx_id: event.tx_id,
        event_id: &event.event_id,
        aggregate_type: &event.aggregate_type,
        aggregate_id: &event.aggregate_id,
        sequence: event.sequence,
        event_type: &event.event_type,
        version: &event.event_version,
        recorded_at: chrono::DateTime::from_timestamp_micros(event.recorded_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        payload: &event.payload,
        metadata: &event.metadata,
    }
}
