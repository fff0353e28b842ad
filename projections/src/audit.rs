//! The admin audit trail: one row per event an admin caused, with who, when, under which request, and what changed.
//!
//! An event belongs to the trail when its metadata says `"role": "admin"` (the command bus
//! writes it for admin commands). Events written before that marker existed are recognised by
//! what only admins do: a catalog or MCP server change with an actor, and credits added as a
//! grant (`grant:{request id}:{reason}`). The row keeps a summary of the change, never a
//! secret (an MCP server's bearer secret shows as whether one is set).

use serde_json::{Value, json};

use crate::db::{Backend, Db};
use crate::event::StoredEvent;
use crate::on_read;
use crate::projection::{Projection, ProjectionError, Tables};

/// The metadata key and value that mark an admin's command.
pub const ROLE_KEY: &str = "role";
pub const ADMIN_ROLE: &str = "admin";

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// The event's log position.
    pub position: i64,
    /// When the event was recorded (microseconds since the epoch).
    pub at: i64,
    /// The admin's account id (absent when not recorded).
    pub actor: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
    pub event_type: String,
    /// What was changed: `account`, `model` or `mcp_server`.
    pub target_type: String,
    pub target_id: String,
    /// A summary of the change (JSON).
    pub details: Value,
}

/// The entry `event` adds to the trail, if it is an admin's.
pub fn entry(event: &StoredEvent) -> Option<Entry> {
    let meta = |key: &str| event.metadata.get(key).and_then(Value::as_str);
    let marked = meta(ROLE_KEY) == Some(ADMIN_ROLE);
    let actor = meta("actor").map(str::to_owned);
    let payload = &event.payload;
    let (target_type, target_id, details) = match event.aggregate_type.as_str() {
        "CatalogModel" if marked || actor.is_some() => (
            "model".to_owned(),
            event.aggregate_id.clone(),
            payload
                .get(&event.event_type)?
                .get("spec")
                .cloned()
                .unwrap_or(Value::Null),
        ),
        "McpServer" if marked || actor.is_some() => {
            let body = payload.get(&event.event_type)?;
            let details = match body.get("url") {
                Some(url) => json!({
                    "url": url,
                    "enabled": body.get("enabled"),
                    "secret": !body.get("secret").is_none_or(Value::is_null),
                }),
                None => json!({}),
            };
            ("mcp_server".to_owned(), event.aggregate_id.clone(), details)
        }
        "CreditWindow" => {
            let body = payload.get(&event.event_type)?;
            let grant = body
                .get("source")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with("grant:"));
            if !(marked || grant) {
                return None;
            }
            let account = event.aggregate_id.split(':').next().unwrap_or_default();
            (
                "account".to_owned(),
                account.to_owned(),
                without_secrets(body.clone()),
            )
        }
        _ if marked => {
            let body = payload
                .get(&event.event_type)
                .cloned()
                .unwrap_or(Value::Null);
            let target = match event.aggregate_type.as_str() {
                "McpServer" => "mcp_server".to_owned(),
                "CatalogModel" => "model".to_owned(),
                other => other.to_lowercase(),
            };
            (target, event.aggregate_id.clone(), without_secrets(body))
        }
        _ => return None,
    };
    Some(Entry {
        position: event.position,
        at: event.recorded_at,
        actor,
        request_id: meta("correlation_id").map(str::to_owned),
        event_type: event.event_type.clone(),
        target_type,
        target_id,
        details,
    })
}

/// `value` with every field whose name says it holds a secret replaced by whether it is set.
fn without_secrets(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let secret = ["secret", "password", "token", "key_hash", "password_hash"]
                        .iter()
                        .any(|s| k.contains(s));
                    if secret {
                        (k, Value::Bool(!v.is_null()))
                    } else {
                        (k, without_secrets(v))
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

/// The audit projection.
pub struct AdminAudit;

impl Projection for AdminAudit {
    fn name(&self) -> &'static str {
        "admin_audit"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["admin_audit"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let table = t.name("admin_audit");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (position BIGINT PRIMARY KEY, \
                 at BIGINT NOT NULL, actor TEXT, request_id TEXT, event_type TEXT NOT NULL, \
                 target_type TEXT NOT NULL, target_id TEXT NOT NULL, details TEXT NOT NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (at, position)",
                t.index("admin_audit", "at")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (actor, at, position)",
                t.index("admin_audit", "actor")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<crate::Stmt>, ProjectionError> {
        let Some(e) = entry(event) else {
            return Ok(vec![]);
        };
        let table = tables.name("admin_audit");
        Ok(vec![crate::Stmt::new(
            format!(
                "INSERT INTO {table} (position, at, actor, request_id, event_type, target_type, \
                 target_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (position) DO NOTHING"
            ),
            vec![
                e.position.into(),
                e.at.into(),
                e.actor.into(),
                e.request_id.into(),
                e.event_type.into(),
                e.target_type.into(),
                e.target_id.into(),
                e.details.to_string().into(),
            ],
        )])
    }
}

/// Which entries [`list`] returns: `from <= at < to` (microseconds), one actor, after a
/// keyset cursor `(at, position)`, newest first.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub actor: Option<String>,
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

type Row = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
);

/// The trail's entries matching `q`, newest first.
pub async fn list(db: &Db, q: &Query) -> Result<Vec<Entry>, sqlx::Error> {
    let (before_at, before_pos) = q.before.unwrap_or((i64::MAX, i64::MAX));
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT position, at, actor, request_id, event_type, target_type, target_id, details \
             FROM admin_audit WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR actor = $3) \
             AND (at < $4 OR (at = $4 AND position < $5)) \
             ORDER BY at DESC, position DESC LIMIT $6"
        }
        Backend::Postgres => {
            "SELECT position, at, actor, request_id, event_type, target_type, target_id, details \
             FROM admin_audit WHERE at >= $1 AND at < $2 AND ($3::text IS NULL OR actor = $3) \
             AND (at < $4 OR (at = $4 AND position < $5)) \
             ORDER BY at DESC, position DESC LIMIT $6"
        }
    };
    let rows: Vec<Row> = on_read!(db, pool => sqlx::query_as(sql)
        .bind(q.from.unwrap_or(i64::MIN))
        .bind(q.to.unwrap_or(i64::MAX))
        .bind(q.actor.as_deref())
        .bind(before_at)
        .bind(before_pos)
        .bind(q.limit)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(position, at, actor, request_id, event_type, target_type, target_id, details)| {
                Entry {
                    position,
                    at,
                    actor,
                    request_id,
                    event_type,
                    target_type,
                    target_id,
                    details: serde_json::from_str(&details).unwrap_or(Value::Null),
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate_type: &str, id: &str, payload: Value, metadata: Value) -> StoredEvent {
        let event_type = payload
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap();
        StoredEvent {
            position: 7,
            tx_id: 0,
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence: 1,
            event_type,
            event_version: "1".into(),
            payload,
            metadata,
            event_id: "e".into(),
            recorded_at: 42,
        }
    }

    #[test]
    fn an_admin_grant_names_the_account_and_the_request() {
        let e = entry(&event(
            "CreditWindow",
            "acc-1:purchased:00000000",
            json!({"CreditsAdded": {"source": "grant:r1:thanks", "amount": 5, "at": "2026-01-01T00:00:00Z"}}),
            json!({"actor": "admin-1", "correlation_id": "r1", "role": "admin"}),
        ))
        .unwrap();
        assert_eq!(e.target_type, "account");
        assert_eq!(e.target_id, "acc-1");
        assert_eq!(e.actor.as_deref(), Some("admin-1"));
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert_eq!(e.details["amount"], 5);
    }

    #[test]
    fn credits_a_reply_spends_are_not_admin_actions() {
        let spent = event(
            "CreditWindow",
            "acc-1:credits:2026-01",
            json!({"CreditsSettled": {"generation_id": "g", "reserved": 2, "amount": 1, "at": "2026-01-01T00:00:00Z"}}),
            json!({"actor": "acc-1", "correlation_id": "r2"}),
        );
        assert_eq!(entry(&spent), None);
        let purchase = event(
            "CreditWindow",
            "acc-1:purchased:00000000",
            json!({"CreditsAdded": {"source": "polar:order-1", "amount": 5, "at": "2026-01-01T00:00:00Z"}}),
            json!({"correlation_id": "r3"}),
        );
        assert_eq!(entry(&purchase), None);
    }

    #[test]
    fn an_mcp_server_secret_never_reaches_the_trail() {
        let e = entry(&event(
            "McpServer",
            "docs",
            json!({"McpServerRegistered": {"url": "http://x", "secret": "s3cret", "enabled": true, "at": "2026-01-01T00:00:00Z"}}),
            json!({"actor": "admin-1", "correlation_id": "r4"}),
        ))
        .unwrap();
        assert_eq!(
            e.details,
            json!({"url": "http://x", "enabled": true, "secret": true})
        );
        assert!(!e.details.to_string().contains("s3cret"));
    }

    #[test]
    fn the_startup_catalog_seed_is_not_an_admin_action() {
        let seed = event(
            "CatalogModel",
            "echo",
            json!({"ModelAdded": {"spec": {}, "at": "2026-01-01T00:00:00Z"}}),
            json!({"correlation_id": "boot"}),
        );
        assert_eq!(entry(&seed), None);
    }

    #[test]
    fn a_marked_event_of_any_kind_is_kept_without_its_secrets() {
        let e = entry(&event(
            "Account",
            "acc-2",
            json!({"AccountErased": {"password_hash": "x", "at": "2026-01-01T00:00:00Z"}}),
            json!({"actor": "cli", "correlation_id": "r5", "role": "admin"}),
        ))
        .unwrap();
        assert_eq!(e.target_type, "account");
        assert_eq!(e.details["password_hash"], true);
    }
}
