//! One row of the global event log, as projections read it.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// An event with its place in the global log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Global position (SQLite: rowid; PostgreSQL: identity column).
    pub position: i64,
    /// PostgreSQL transaction id (`xid8`) of the insert; 0 on SQLite. The log's order is
    /// `(tx_id, position)`.
    pub tx_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub event_id: String,
    /// Microseconds since the Unix epoch, as recorded by the database.
    pub recorded_at: i64,
}

impl StoredEvent {
    /// Deserializes the payload into a domain event, after the upcasters (without copying
    /// the payload when none applies).
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        use threadline_domain::upcast::{needs_upcast, upcast_payload};
        if !needs_upcast(&self.event_type, &self.event_version) {
            return E::deserialize(&self.payload);
        }
        let payload = upcast_payload(&self.event_type, &self.event_version, self.payload.clone());
        serde_json::from_value(payload)
    }

    /// The log order key.
    pub fn cursor(&self) -> (i64, i64) {
        (self.tx_id, self.position)
    }
}
