//! `threadline replay generation <id> [--speed 1x|2x|max]`: a reply's UI message stream from
//! the log, written to stdout at the pace it was recorded (scaled).

use std::io::Write;

use futures::StreamExt;

use super::{ReplayCommand, StorageArgs};
use crate::chat::render::SSE_DONE;
use crate::chat::replay::{self, Clock, Paced, Speed};

/// Runs a replay subcommand.
pub async fn run(
    storage: StorageArgs,
    command: ReplayCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let ReplayCommand::Generation { id, speed } = command;
    let speed = Speed::parse(&speed)
        .ok_or("--speed takes `1x`, `2x`, `0.5x`… (0.01x to 1000x) or `max`")?;
    let (db, keys) = storage.open().await?;
    let events = replay::load(&db, &keys, &id).await?;
    if events.is_empty() {
        return Err(format!("no generation {id}").into());
    }
    let paced = replay::paced(events, speed, Clock::Real, None);
    futures::pin_mut!(paced);
    let mut out = std::io::stdout().lock();
    while let Some(item) = paced.next().await {
        match item {
            Paced::Frames(frames) => out.write_all(frames.as_bytes())?,
            Paced::End { done: true, .. } => out.write_all(SSE_DONE.as_bytes())?,
            Paced::End { done: false, .. } => {
                eprintln!("the reply was still running: replayed what was recorded");
            }
        }
        out.flush()?;
    }
    Ok(())
}
