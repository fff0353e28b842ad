//! The registered MCP servers: one row per server name with its URL, bearer secret and
//! whether its tools are offered. The admin API lists them (without the secret); replies read
//! the enabled ones to offer their tools.

use threadline_domain::mcp::McpServerEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::on_read;
use crate::projection::{Projection, ProjectionError, Tables, bool_type, decode};

/// A change to the `mcp_servers` table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert {
        name: String,
        url: String,
        secret: Option<String>,
        enabled: bool,
        at: i64,
    },
    Delete {
        name: String,
    },
}

/// Folds one event of server `name`.
pub fn apply(name: &str, event: McpServerEvent) -> Vec<Change> {
    match event {
        McpServerEvent::McpServerRegistered {
            url,
            secret,
            enabled,
            at,
        }
        | McpServerEvent::McpServerUpdated {
            url,
            secret,
            enabled,
            at,
        } => vec![Change::Upsert {
            name: name.to_owned(),
            url,
            secret,
            enabled,
            at: crate::micros(at),
        }],
        McpServerEvent::McpServerRemoved { .. } => vec![Change::Delete {
            name: name.to_owned(),
        }],
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let servers = t.name("mcp_servers");
    match change {
        Change::Upsert {
            name,
            url,
            secret,
            enabled,
            at,
        } => Stmt::new(
            format!(
                "INSERT INTO {servers} (name, url, secret, enabled, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
                 enabled = excluded.enabled, updated_at = excluded.updated_at"
            ),
            vec![
                name.into(),
                url.into(),
                secret.into(),
                enabled.into(),
                at.into(),
            ],
        ),
        Change::Delete { name } => Stmt::new(
            format!("DELETE FROM {servers} WHERE name = $1"),
            vec![name.into()],
        ),
    }
}

/// The MCP servers projection.
pub struct McpServers;

impl Projection for McpServers {
    fn name(&self) -> &'static str {
        "mcp_servers"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["mcp_servers"]
    }

    fn ddl(&self, backend: Backend, t: &Tables) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, url TEXT NOT NULL, \
             secret TEXT, enabled {} NOT NULL, updated_at BIGINT NOT NULL)",
            t.name("mcp_servers"),
            bool_type(backend)
        )]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        if event.aggregate_type != "McpServer" {
            return Ok(vec![]);
        }
        Ok(apply(&event.aggregate_id, decode(event)?)
            .into_iter()
            .map(|c| sql(c, tables))
            .collect())
    }
}

/// One registered server as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct McpServerRow {
    pub name: String,
    pub url: String,
    /// The bearer secret sent to the server; never shown by the API.
    pub secret: Option<String>,
    pub enabled: bool,
    /// Microseconds since the epoch of the registration's last change.
    pub updated_at: i64,
}

const COLUMNS: &str = "name, url, secret, enabled, updated_at";

/// Every registered server, by name.
pub async fn all(db: &Db) -> Result<Vec<McpServerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM mcp_servers ORDER BY name");
    on_read!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)
}

/// The servers whose tools are offered, by name.
pub async fn enabled(db: &Db) -> Result<Vec<McpServerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM mcp_servers WHERE enabled = TRUE ORDER BY name");
    on_read!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)
}

/// One registered server.
pub async fn get(db: &Db, name: &str) -> Result<Option<McpServerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM mcp_servers WHERE name = $1");
    on_read!(db, pool => sqlx::query_as(&sql).bind(name).fetch_optional(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn a_registration_upserts_its_row_and_a_removal_deletes_it() {
        let at = DateTime::from_timestamp(2, 0).unwrap();
        let events = [
            McpServerEvent::McpServerRegistered {
                url: "http://a/mcp".into(),
                secret: Some("s".into()),
                enabled: true,
                at,
            },
            McpServerEvent::McpServerUpdated {
                url: "http://b/mcp".into(),
                secret: None,
                enabled: false,
                at,
            },
            McpServerEvent::McpServerRemoved { at },
        ];
        let changes: Vec<Change> = events.into_iter().flat_map(|e| apply("docs", e)).collect();
        assert_eq!(
            changes,
            vec![
                Change::Upsert {
                    name: "docs".into(),
                    url: "http://a/mcp".into(),
                    secret: Some("s".into()),
                    enabled: true,
                    at: 2_000_000,
                },
                Change::Upsert {
                    name: "docs".into(),
                    url: "http://b/mcp".into(),
                    secret: None,
                    enabled: false,
                    at: 2_000_000,
                },
                Change::Delete {
                    name: "docs".into()
                },
            ]
        );
        let stmt = sql(changes[2].clone(), &Tables::live());
        assert!(stmt.sql.contains("DELETE FROM mcp_servers"), "{}", stmt.sql);
    }
}
