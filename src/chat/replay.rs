//! Replaying a reply at the pace it was written: the UI message stream of a generation's
//! recorded events, each event's parts sent after the gap between its commit and the previous
//! one (scaled by the speed). A chunk reached its readers when it was committed, so the gaps
//! between commits are the pauses the reader saw. `threadline replay generation` and
//! `GET /v1/generations/{id}/events?speed=` use it.
//!
//! The waits go through a [`Clock`] (`src/clock.rs`): the real one, or a [`VirtualClock`] on
//! which time passes at once and every wait is recorded, for tests that check the pacing
//! without timing anything.

use std::time::Duration;

use futures::Stream;
use threadline_domain::generation::GenerationEvent;
use threadline_projections::{Backend, Db};

use crate::store::keys::KeyRing;

use super::render::{PartId, Renderer, sse_event};
pub use crate::clock::{Clock, VirtualClock};

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// The recorded gaps divided by this factor (`1x`: as recorded, `2x`: twice as fast).
    Times(f64),
    /// No waits at all.
    Max,
}

impl Speed {
    /// Parses `1x`, `2x`, `0.5x`, … (a factor from 0.01 to 1000) or `max`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Some(Speed::Max);
        }
        let factor: f64 = s.strip_suffix(['x', 'X'])?.parse().ok()?;
        (0.01..=1000.0)
            .contains(&factor)
            .then_some(Speed::Times(factor))
    }

    /// The wait for a recorded gap of `micros`.
    pub fn wait(&self, micros: i64) -> Duration {
        match self {
            Speed::Max => Duration::ZERO,
            Speed::Times(factor) => Duration::from_micros(micros.max(0) as u64).div_f64(*factor),
        }
    }
}

/// A generation event with its sequence and when it was committed (microseconds).
pub type TimedEvent = (i64, i64, GenerationEvent);

/// Every recorded event of generation `id`, in order, with its commit time.
pub async fn load(db: &Db, keys: &KeyRing, id: &str) -> Result<Vec<TimedEvent>, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT sequence, recorded_at, event_type, event_version, payload, metadata \
             FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 ORDER BY sequence"
        }
        Backend::Postgres => {
            "SELECT sequence, (extract(epoch FROM recorded_at) * 1000000)::bigint, event_type, \
             event_version, payload::text, metadata::text FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 ORDER BY sequence"
        }
    };
    let rows: Vec<(i64, i64, String, String, String, String)> = threadline_projections::on_read!(db, pool =>
        sqlx::query_as(sql).bind(id).fetch_all(pool).await)?;
    let mut events = Vec::with_capacity(rows.len());
    for (seq, at, event_type, version, payload, metadata) in rows {
        let event = super::reader::decode(keys, &event_type, &version, &payload, &metadata).await?;
        events.push((seq, at, event));
    }
    Ok(events)
}

/// What a paced replay yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Paced {
    /// SSE frames, sent after their wait.
    Frames(String),
    /// The recorded events are all sent: the last part sent (or skipped by `after`), and
    /// whether the reply had ended (else it was still running when the replay read it).
    End { last: Option<PartId>, done: bool },
}

/// The UI message stream of `events`, each event's frames after its recorded gap scaled by
/// `speed`, leaving out the parts up to `after`. Gaps before the first frame sent are not
/// waited.
pub fn paced(
    events: Vec<TimedEvent>,
    speed: Speed,
    clock: Clock,
    after: Option<PartId>,
) -> impl Stream<Item = Paced> {
    async_stream::stream! {
        let mut renderer = Renderer::default();
        let mut previous: Option<i64> = None;
        let mut last = after;
        for (seq, at, event) in events {
            let mut frames = String::new();
            for part in renderer.render(seq, &event) {
                if after.is_none_or(|a| part.id > a) {
                    frames.push_str(&sse_event(&part));
                    last = Some(part.id);
                }
            }
            if frames.is_empty() {
                continue;
            }
            if let Some(previous) = previous {
                clock.sleep(speed.wait(at - previous)).await;
            }
            previous = Some(at);
            yield Paced::Frames(frames);
        }
        yield Paced::End { last, done: renderer.is_done() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::Arc;
    use threadline_domain::generation::{Chunk, Origin};

    fn text(t: &str) -> GenerationEvent {
        GenerationEvent::ChunksAppended {
            first_index: 0,
            chunks: vec![Chunk::Text { text: t.into() }],
        }
    }

    fn started() -> GenerationEvent {
        GenerationEvent::GenerationStarted {
            message_id: "m".into(),
            origin: Origin::Thread {
                thread_id: "t".into(),
                parent_id: "u".into(),
            },
            model: "echo".into(),
            provider: "echo".into(),
            context: vec![],
            node_id: "n".into(),
            charged_to: None,
            at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn recorded() -> Vec<TimedEvent> {
        vec![
            (1, 1_000_000, started()),
            (2, 1_120_000, text("Hel")),
            (3, 1_150_000, text("lo")),
            (4, 2_150_000, text("!")),
        ]
    }

    async fn waits(speed: Speed, after: Option<PartId>) -> (Vec<Duration>, Vec<Paced>) {
        let clock = Arc::new(VirtualClock::default());
        let out: Vec<Paced> = paced(recorded(), speed, Clock::Virtual(clock.clone()), after)
            .collect()
            .await;
        (clock.take(), out)
    }

    #[tokio::test]
    async fn the_recorded_gaps_are_waited_scaled_by_the_speed() {
        let ms = Duration::from_millis;
        let (at_1x, out) = waits(Speed::Times(1.0), None).await;
        assert_eq!(at_1x, [ms(120), ms(30), ms(1000)]);
        assert_eq!(out.len(), 5);
        assert_eq!(
            out.last(),
            Some(&Paced::End {
                last: Some(PartId(4, 0)),
                done: false
            })
        );
        let (at_2x, _) = waits(Speed::Times(2.0), None).await;
        assert_eq!(at_2x, [ms(60), ms(15), ms(500)]);
        let (at_max, same) = waits(Speed::Max, None).await;
        assert!(at_max.is_empty());
        assert_eq!(same, out, "the speed changes the waits, not the stream");
    }

    #[tokio::test]
    async fn a_resumed_replay_waits_only_between_the_parts_it_sends() {
        let (waits, out) = waits(Speed::Times(1.0), Some(PartId(2, 99))).await;
        assert_eq!(waits, [Duration::from_millis(1000)]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn speeds_parse() {
        assert_eq!(Speed::parse("1x"), Some(Speed::Times(1.0)));
        assert_eq!(Speed::parse("0.5X"), Some(Speed::Times(0.5)));
        assert_eq!(Speed::parse("max"), Some(Speed::Max));
        for bad in ["", "x", "2", "-1x", "0x", "fast", "1e9x", "NaNx"] {
            assert_eq!(Speed::parse(bad), None, "{bad}");
        }
    }
}
