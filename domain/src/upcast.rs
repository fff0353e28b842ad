//! The upcaster path: every stored event passes through [`upcasters`] before it is deserialized,
//! both when cqrs-es loads an aggregate and when a projection reads the log.
//!
//! When an event's shape changes: bump its version in the event's `event_version()`, and add an
//! upcaster here that turns the old payload into the new one (see CONTRIBUTING.md). Old events
//! are never rewritten in the log.

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

/// One registered payload transformation: events of `event_type` older than `to_version` are
/// rewritten by `upcast`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub to_version: &'static str,
    pub upcast: fn(Value) -> Value,
}

/// Every upcaster of the domain, oldest first.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "GenerationStarted",
    to_version: crate::generation::ORIGIN_SINCE,
    upcast: generation_started_origin,
}];

/// `GenerationStarted` before 3.0 named its thread and the user message it answered in two
/// fields of its own; since 3.0 they are its `origin` (a reply of the stateless API has none).
/// Every earlier reply was a reply in a thread.
fn generation_started_origin(mut payload: Value) -> Value {
    if let Some(body) = payload
        .get_mut("GenerationStarted")
        .and_then(Value::as_object_mut)
    {
        let thread_id = body.remove("thread_id").unwrap_or(Value::Null);
        let parent_id = body.remove("parent_id").unwrap_or(Value::Null);
        body.insert(
            "origin".into(),
            serde_json::json!({"thread": {"thread_id": thread_id, "parent_id": parent_id}}),
        );
    }
    payload
}

/// The upcasters in cqrs-es's form, for `PersistedEventStore::with_upcasters`.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    UPCASTERS
        .iter()
        .map(|u| {
            let f = u.upcast;
            Box::new(SemanticVersionEventUpcaster::new(
                u.event_type,
                u.to_version,
                Box::new(f),
            )) as Box<dyn EventUpcaster>
        })
        .collect()
}

/// Whether a stored payload of `event_type` at `event_version` has an upcaster to pass
/// through (most do not: readers then decode the stored payload as it is).
pub fn needs_upcast(event_type: &str, event_version: &str) -> bool {
    UPCASTERS
        .iter()
        .any(|u| u.event_type == event_type && version_lt(event_version, u.to_version))
}

/// Applies the upcasters to a raw stored payload (for readers that do not go through cqrs-es).
pub fn upcast_payload(event_type: &str, event_version: &str, mut payload: Value) -> Value {
    let mut version = event_version.to_owned();
    for u in UPCASTERS.iter().filter(|u| u.event_type == event_type) {
        if version_lt(&version, u.to_version) {
            payload = (u.upcast)(payload);
            version = u.to_version.to_owned();
        }
    }
    payload
}

pub fn version_lt(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_lt("1.0", "1.1"));
        assert!(version_lt("1.9", "1.10"));
        assert!(!version_lt("2.0", "1.10"));
    }

    #[test]
    fn a_payload_without_upcasters_is_unchanged() {
        let v = serde_json::json!({"ThreadCreated": {"owner": "x"}});
        assert_eq!(upcast_payload("ThreadCreated", "1.0", v.clone()), v);
    }

    fn started_before_origins() -> Value {
        serde_json::json!({"GenerationStarted": {
            "thread_id": "t", "message_id": "m2", "parent_id": "m1",
            "model": "echo", "provider": "echo",
            "context": [{"role": "user", "content": "hi"}],
            "node_id": "n", "at": "1970-01-01T00:00:00Z"
        }})
    }

    #[test]
    fn a_reply_started_before_origins_is_read_as_a_reply_in_its_thread() {
        use crate::generation::{GenerationEvent, Origin};
        for version in ["1.0", "2.0"] {
            assert!(needs_upcast("GenerationStarted", version));
            let event: GenerationEvent = serde_json::from_value(upcast_payload(
                "GenerationStarted",
                version,
                started_before_origins(),
            ))
            .unwrap();
            let GenerationEvent::GenerationStarted {
                message_id,
                origin,
                charged_to,
                ..
            } = event
            else {
                panic!("not a start: {event:?}");
            };
            assert_eq!(message_id, "m2");
            assert_eq!(
                origin,
                Origin::Thread {
                    thread_id: "t".into(),
                    parent_id: "m1".into()
                }
            );
            assert_eq!(charged_to, None);
        }
    }

    #[test]
    fn a_reply_started_since_origins_is_read_as_written() {
        use crate::generation::{GenerationEvent, ORIGIN_SINCE, Origin};
        assert!(!needs_upcast("GenerationStarted", ORIGIN_SINCE));
        let event = GenerationEvent::GenerationStarted {
            message_id: "m".into(),
            origin: Origin::Api,
            model: "echo".into(),
            provider: "echo".into(),
            context: vec![],
            node_id: "n".into(),
            charged_to: None,
            at: chrono::DateTime::UNIX_EPOCH,
        };
        let stored = serde_json::to_value(&event).unwrap();
        assert_eq!(stored["GenerationStarted"]["origin"], "api");
        assert_eq!(
            upcast_payload("GenerationStarted", ORIGIN_SINCE, stored.clone()),
            stored
        );
    }

    #[test]
    fn cqrs_es_loads_an_old_start_through_the_same_upcaster() {
        use cqrs_es::persist::SerializedEvent;
        let old = SerializedEvent {
            aggregate_id: "g".into(),
            sequence: 1,
            aggregate_type: "Generation".into(),
            event_type: "GenerationStarted".into(),
            event_version: "1.0".into(),
            payload: started_before_origins(),
            metadata: Value::Null,
        };
        let upcaster = upcasters().into_iter().next().unwrap();
        assert!(upcaster.can_upcast(&old.event_type, &old.event_version));
        let new = upcaster.upcast(old);
        assert!(!version_lt(
            &new.event_version,
            crate::generation::ORIGIN_SINCE
        ));
        assert_eq!(
            new.payload["GenerationStarted"]["origin"]["thread"]["thread_id"],
            "t"
        );
    }
}
