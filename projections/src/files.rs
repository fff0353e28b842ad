//! Uploaded files: the metadata of every live attachment, by owner.
//!
//! Table `files`: one row per file not deleted. A deleted file's row goes (its id is never
//! reused: the `File` stream refuses a second upload); a linked anonymous account's files move
//! to the registered account with its threads. The bytes are in the file store under `sha256`;
//! [`references`] says whether any live file still points at them.

use serde::Serialize;
use threadline_domain::account::AccountEvent;
use threadline_domain::file::FileEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// A change to the files table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Insert(FileRow),
    Delete { id: String },
    MoveOwner { from: String, to: String },
}

/// Folds one event of file `file_id`.
pub fn apply_file(file_id: &str, event: FileEvent) -> Vec<Change> {
    match event {
        FileEvent::FileUploaded { meta, at } => vec![Change::Insert(FileRow {
            id: file_id.to_owned(),
            owner: meta.owner.to_string(),
            sha256: meta.sha256,
            media_type: meta.media_type,
            size: i64::try_from(meta.size).unwrap_or(i64::MAX),
            filename: meta.filename,
            created_at: micros(at),
        })],
        FileEvent::FileDeleted { .. } => vec![Change::Delete {
            id: file_id.to_owned(),
        }],
    }
}

/// Folds an account event (of account `account_id`): a link moves the anonymous account's files.
pub fn apply_account(account_id: &str, event: AccountEvent) -> Vec<Change> {
    match event {
        AccountEvent::AnonymousAccountLinked {
            anonymous_account_id,
            ..
        } => vec![Change::MoveOwner {
            from: anonymous_account_id.to_string(),
            to: account_id.to_owned(),
        }],
        _ => vec![],
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let files = t.name("files");
    match change {
        Change::Insert(f) => Stmt::new(
            format!(
                "INSERT INTO {files} (id, owner, sha256, media_type, size, filename, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            vec![
                f.id.into(),
                f.owner.into(),
                f.sha256.into(),
                f.media_type.into(),
                f.size.into(),
                f.filename.into(),
                f.created_at.into(),
            ],
        ),
        Change::Delete { id } => Stmt::new(
            format!("DELETE FROM {files} WHERE id = $1"),
            vec![id.into()],
        ),
        Change::MoveOwner { from, to } => Stmt::new(
            format!("UPDATE {files} SET owner = $1 WHERE owner = $2"),
            vec![to.into(), from.into()],
        ),
    }
}

/// The files projection.
pub struct Files;

impl Projection for Files {
    fn name(&self) -> &'static str {
        "files"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["files"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let files = t.name("files");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {files} (
                    id TEXT PRIMARY KEY,
                    owner TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    media_type TEXT NOT NULL,
                    size BIGINT NOT NULL,
                    filename TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {files} (owner, created_at)",
                t.index("files", "owner")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {files} (sha256)",
                t.index("files", "sha256")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        let changes = match event.aggregate_type.as_str() {
            "File" => apply_file(&event.aggregate_id, decode(event)?),
            "Account" if event.event_type == "AnonymousAccountLinked" => {
                apply_account(&event.aggregate_id, decode(event)?)
            }
            _ => return Ok(vec![]),
        };
        Ok(changes.into_iter().map(|c| sql(c, tables)).collect())
    }
}

/// A file as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FileRow {
    pub id: String,
    pub owner: String,
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
    pub filename: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, owner, sha256, media_type, size, filename, created_at";

/// File `id` if `owner` owns it.
pub async fn get(db: &Db, owner: &str, id: &str) -> Result<Option<FileRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE id = $1 AND owner = $2");
    on_read!(db, pool => sqlx::query_as(&sql).bind(id).bind(owner).fetch_optional(pool).await)
}

/// `owner`'s files, newest first.
pub async fn of_owner(db: &Db, owner: &str) -> Result<Vec<FileRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM files WHERE owner = $1 ORDER BY created_at DESC, id DESC");
    on_read!(db, pool => sqlx::query_as(&sql).bind(owner).fetch_all(pool).await)
}

/// How many live files hold the bytes `sha256`.
pub async fn references(db: &Db, sha256: &str) -> Result<i64, sqlx::Error> {
    on_read!(db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE sha256 = $1")
            .bind(sha256)
            .fetch_one(pool)
            .await)
}

/// The ids of the live files holding the bytes with digest `sha256` (as far as the projection
/// has caught up: a caller that has just deleted files leaves their ids out itself).
pub async fn holders(db: &Db, sha256: &str) -> Result<Vec<String>, sqlx::Error> {
    on_read!(db, pool =>
        sqlx::query_scalar("SELECT id FROM files WHERE sha256 = $1")
            .bind(sha256)
            .fetch_all(pool)
            .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use threadline_domain::file::FileMeta;
    use threadline_domain::values::AccountId;
    use uuid::Uuid;

    #[test]
    fn an_upload_is_a_row_a_delete_removes_it_and_a_link_moves_it() {
        let owner = AccountId(Uuid::from_u128(1));
        let at = DateTime::from_timestamp(3, 0).unwrap();
        let changes = apply_file(
            "f",
            FileEvent::FileUploaded {
                meta: FileMeta {
                    owner,
                    sha256: "00".repeat(32),
                    media_type: "application/pdf".into(),
                    size: 10,
                    filename: "a.pdf".into(),
                },
                at,
            },
        );
        assert_eq!(
            changes,
            [Change::Insert(FileRow {
                id: "f".into(),
                owner: owner.to_string(),
                sha256: "00".repeat(32),
                media_type: "application/pdf".into(),
                size: 10,
                filename: "a.pdf".into(),
                created_at: 3_000_000,
            })]
        );
        assert_eq!(
            apply_file("f", FileEvent::FileDeleted { at }),
            [Change::Delete { id: "f".into() }]
        );
        assert_eq!(
            apply_account(
                "reg",
                AccountEvent::AnonymousAccountLinked {
                    anonymous_account_id: owner,
                    at,
                }
            ),
            [Change::MoveOwner {
                from: owner.to_string(),
                to: "reg".into()
            }]
        );
        let stmt = sql(Change::Delete { id: "f".into() }, &Tables::live());
        assert!(stmt.sql.contains("DELETE FROM files"), "{}", stmt.sql);
    }
}
