//! Coalescing a reply's chunk events before they are folded: a batch of the log that holds
//! several `ChunksAppended` events of one reply, with no other event of that reply between
//! them, folds them as one event carrying all their chunks. The read models need a reply's
//! text at the end of the batch, not after every delta, and a batch of 64 streams then costs
//! a few statements per reply instead of a few per chunk event.
//!
//! The merged event takes the place (and cursor) of the last one it replaces and the
//! `first_index` of the first, so folding it is the same as folding the events one by one:
//! no projection reads a reply's text from its tables when it folds an event of another
//! stream, and the reply's own other events (its start, its end) are boundaries that are never
//! crossed. Only events of the current version whose chunk indices follow on are merged.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use threadline_projections::StoredEvent;

const CHUNKS: &str = "ChunksAppended";

/// `events` with runs of one reply's chunk events merged (see the module documentation). Each
/// event's chunks are copied once, into the one event its run becomes.
pub(crate) fn coalesce(events: &[StoredEvent]) -> Vec<Cow<'_, StoredEvent>> {
    // One slot per event in log order, holding the events that fold as one there: a run moves
    // to the slot of its newest event and leaves its earlier slots empty.
    let mut slots: Vec<Vec<usize>> = Vec::with_capacity(events.len());
    let mut open: HashMap<&str, usize> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        if event.aggregate_type != "Generation" {
            slots.push(vec![i]);
            continue;
        }
        let id = event.aggregate_id.as_str();
        if event.event_type != CHUNKS
            || threadline_domain::upcast::needs_upcast(&event.event_type, &event.event_version)
        {
            open.remove(id);
            slots.push(vec![i]);
            continue;
        }
        let joins = open.get(id).copied().filter(|&slot| {
            slots[slot]
                .last()
                .is_some_and(|&last| follows(&events[last], event))
        });
        let run = match joins {
            Some(slot) => {
                let mut run = std::mem::take(&mut slots[slot]);
                run.push(i);
                run
            }
            None => vec![i],
        };
        slots.push(run);
        open.insert(id, slots.len() - 1);
    }
    let mut out = Vec::with_capacity(slots.len());
    for run in slots {
        match run.as_slice() {
            [] => {}
            [one] => out.push(Cow::Borrowed(&events[*one])),
            _ => match merge(events, &run) {
                Some(merged) => out.push(Cow::Owned(merged)),
                None => out.extend(run.iter().map(|&i| Cow::Borrowed(&events[i]))),
            },
        }
    }
    out
}

/// Whether `later`'s chunks follow on from `earlier`'s, in the same event version.
fn follows(earlier: &StoredEvent, later: &StoredEvent) -> bool {
    match (body(earlier), body(later)) {
        (Some((first, chunks)), Some((next, _))) => {
            first + chunks.len() as u64 == next && earlier.event_version == later.event_version
        }
        _ => false,
    }
}

/// The events of `run` (indices into `events`, each following on from the one before) as one
/// event at the place of the last, with the `first_index` of the first.
fn merge(events: &[StoredEvent], run: &[usize]) -> Option<StoredEvent> {
    let bodies: Vec<(u64, &Vec<Value>)> = run
        .iter()
        .map(|&i| body(&events[i]))
        .collect::<Option<_>>()?;
    let last = &events[*run.last()?];
    let first = bodies.first().map_or(0, |(first, _)| *first);
    let mut all = Vec::with_capacity(bodies.iter().map(|(_, c)| c.len()).sum());
    for (_, chunks) in &bodies {
        all.extend(chunks.iter().cloned());
    }
    Some(StoredEvent {
        position: last.position,
        tx_id: last.tx_id,
        aggregate_type: last.aggregate_type.clone(),
        aggregate_id: last.aggregate_id.clone(),
        sequence: last.sequence,
        event_type: last.event_type.clone(),
        event_version: last.event_version.clone(),
        payload: serde_json::json!({ CHUNKS: { "first_index": first, "chunks": all } }),
        metadata: last.metadata.clone(),
        event_id: last.event_id.clone(),
        recorded_at: last.recorded_at,
    })
}

/// A chunk event's `first_index` and chunks.
fn body(event: &StoredEvent) -> Option<(u64, &Vec<Value>)> {
    let body = event.payload.get(CHUNKS)?;
    Some((
        body.get("first_index")?.as_u64()?,
        body.get("chunks")?.as_array()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use threadline_domain::generation::{Chunk, GenerationEvent};

    fn event(position: i64, aggregate_type: &str, id: &str, payload: Value) -> StoredEvent {
        let event_type = payload
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        StoredEvent {
            position,
            tx_id: 0,
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence: position,
            event_type,
            event_version: "1.0".into(),
            payload,
            metadata: Value::Null,
            event_id: format!("e{position}"),
            recorded_at: 0,
        }
    }

    fn chunks(position: i64, id: &str, first_index: u64, texts: &[&str]) -> StoredEvent {
        let chunks = texts
            .iter()
            .map(|t| Chunk::Text {
                text: (*t).to_owned(),
            })
            .collect();
        let payload = serde_json::to_value(GenerationEvent::ChunksAppended {
            first_index,
            chunks,
        })
        .unwrap();
        event(position, "Generation", id, payload)
    }

    fn texts(event: &StoredEvent) -> (u64, Vec<String>) {
        let Ok(GenerationEvent::ChunksAppended {
            first_index,
            chunks,
        }) = event.decode::<GenerationEvent>()
        else {
            panic!("{event:?}")
        };
        let texts = chunks
            .into_iter()
            .map(|c| match c {
                Chunk::Text { text } => text,
                other => panic!("{other:?}"),
            })
            .collect();
        (first_index, texts)
    }

    #[test]
    fn a_replys_chunk_events_fold_as_one_at_the_place_of_the_last() {
        let events = vec![
            chunks(1, "g1", 0, &["a", "b"]),
            chunks(2, "g2", 0, &["x"]),
            event(3, "Thread", "t", serde_json::json!({"ThreadPinned": {}})),
            chunks(4, "g1", 2, &["c"]),
            chunks(5, "g2", 1, &["y"]),
        ];
        let out = coalesce(&events);
        let positions: Vec<i64> = out.iter().map(|e| e.position).collect();
        assert_eq!(positions, [3, 4, 5]);
        assert_eq!(
            texts(&out[1]),
            (0, vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(texts(&out[2]), (0, vec!["x".into(), "y".into()]));
    }

    #[test]
    fn a_long_run_becomes_one_event_with_every_chunk_in_order() {
        let events: Vec<StoredEvent> = (0..100)
            .map(|i| chunks(i + 1, "g1", i as u64, &[&format!("w{i}")]))
            .collect();
        let out = coalesce(&events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].position, 100);
        let (first, all) = texts(&out[0]);
        assert_eq!(first, 0);
        assert_eq!(all, (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn another_event_of_the_reply_or_a_gap_in_its_indices_keeps_them_apart() {
        let finished = serde_json::json!({"GenerationStopped": {"at": "2026-01-01T00:00:00Z"}});
        let events = vec![
            chunks(1, "g1", 0, &["a"]),
            event(2, "Generation", "g1", finished),
            chunks(3, "g1", 1, &["b"]),
            chunks(4, "g1", 5, &["c"]),
        ];
        let out = coalesce(&events);
        let positions: Vec<i64> = out.iter().map(|e| e.position).collect();
        assert_eq!(positions, [1, 2, 3, 4]);
        assert!(out.iter().all(|e| matches!(e, Cow::Borrowed(_))));
    }
}
