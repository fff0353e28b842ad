//! The model catalog as the API reads it: one row per model id with its current entry.

use threadline_domain::catalog::{CatalogEvent, ModelSpec};

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// A change to the catalog table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert { id: String, spec: String, at: i64 },
}

/// Folds one catalog event of model `id`.
pub fn apply(id: &str, event: CatalogEvent) -> Vec<Change> {
    match event {
        CatalogEvent::ModelAdded { spec, at } | CatalogEvent::ModelUpdated { spec, at } => {
            vec![Change::Upsert {
                id: id.to_owned(),
                spec: serde_json::to_string(&spec).unwrap_or_default(),
                at: micros(at),
            }]
        }
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let models = t.name("models");
    let Change::Upsert { id, spec, at } = change;
    Stmt::new(
        format!(
            "INSERT INTO {models} (id, spec, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at"
        ),
        vec![id.into(), spec.into(), at.into()],
    )
}

/// The catalog projection.
pub struct Catalog;

impl Projection for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["models"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (id TEXT PRIMARY KEY, spec TEXT NOT NULL, \
             created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
            t.name("models")
        )]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        if event.aggregate_type != "CatalogModel" {
            return Ok(vec![]);
        }
        Ok(apply(&event.aggregate_id, decode(event)?)
            .into_iter()
            .map(|c| sql(c, tables))
            .collect())
    }
}

/// Every catalog entry, by id.
pub async fn all(db: &Db) -> Result<Vec<(String, ModelSpec)>, sqlx::Error> {
    Ok(listed(db)
        .await?
        .into_iter()
        .map(|entry| (entry.id, entry.spec))
        .collect())
}

/// A catalog row: the entry and when its model was first added.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub spec: ModelSpec,
    /// Microseconds since the Unix epoch of the model's `ModelAdded`.
    pub created_at: i64,
}

/// Every catalog row, by id.
pub async fn listed(db: &Db) -> Result<Vec<Listed>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = on_read!(db, pool =>
        sqlx::query_as("SELECT id, spec, created_at FROM models ORDER BY id").fetch_all(pool).await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, spec, created_at)| {
            let spec = serde_json::from_str(&spec).ok()?;
            Some(Listed {
                id,
                spec,
                created_at,
            })
        })
        .collect())
}

/// One catalog entry.
pub async fn get(db: &Db, id: &str) -> Result<Option<ModelSpec>, sqlx::Error> {
    let spec: Option<String> = on_read!(db, pool =>
        sqlx::query_scalar("SELECT spec FROM models WHERE id = $1").bind(id).fetch_optional(pool).await)?;
    Ok(spec.and_then(|s| serde_json::from_str(&s).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use threadline_domain::catalog::default_catalog;

    #[test]
    fn an_added_or_updated_model_replaces_its_row() {
        let (id, spec) = default_catalog().remove(1);
        let changes = apply(
            id,
            CatalogEvent::ModelUpdated {
                spec: spec.clone(),
                at: DateTime::from_timestamp(1, 0).unwrap(),
            },
        );
        let Change::Upsert { spec: json, at, .. } = &changes[0];
        assert_eq!(*at, 1_000_000);
        assert_eq!(serde_json::from_str::<ModelSpec>(json).unwrap(), spec);
    }
}
