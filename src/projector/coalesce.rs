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

/// `events` with runs of one reply's chunk events merged (see the module documentation).
pub(crate) fn coalesce(events: &[StoredEvent]) -> Vec<Cow<'_, StoredEvent>> {
    let mut out: Vec<Option<Cow<'_, StoredEvent>>> = Vec::with_capacity(events.len());
    // Reply → the index in `out` of its chunk event that later ones may join.
    let mut open: HashMap<&str, usize> = HashMap::new();
    for event in events {
        if event.aggregate_type != "Generation" {
            out.push(Some(Cow::Borrowed(event)));
            continue;
        }
        let id = event.aggregate_id.as_str();
        if event.event_type != CHUNKS
            || threadline_domain::upcast::needs_upcast(&event.event_type, &event.event_version)
        {
            open.remove(id);
            out.push(Some(Cow::Borrowed(event)));
            continue;
        }
        let merged = open
            .get(id)
            .and_then(|&i| Some((i, merge(out[i].as_deref()?, event)?)));
        match merged {
            Some((i, merged)) => {
                out[i] = None;
                out.push(Some(Cow::Owned(merged)));
            }
            None => out.push(Some(Cow::Borrowed(event))),
        }
        open.insert(id, out.len() - 1);
    }
    out.into_iter().flatten().collect()
}

/// `earlier` with `later`'s chunks appended, at `later`'s place; `None` when they do not
/// follow on.
fn merge(earlier: &StoredEvent, later: &StoredEvent) -> Option<StoredEvent> {
    let ((first, chunks), (next, more)) = (body(earlier)?, body(later)?);
    if first + chunks.len() as u64 != next || earlier.event_version != later.event_version {
        return None;
    }
    let mut all = Vec::with_capacity(chunks.len() + more.len());
    all.extend(chunks.iter().cloned());
    all.extend(more.iter().cloned());
    let mut merged = later.clone();
    merged.payload = serde_json::json!({ CHUNKS: { "first_index": first, "chunks": all } });
    Some(merged)
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
