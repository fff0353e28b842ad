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

/// Every upcaster of the domain, oldest first. Empty while every event is at its first version.
pub const UPCASTERS: &[Upcaster] = &[];

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
}
