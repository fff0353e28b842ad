//! Uploading and deleting attachments: the bytes are sniffed, limited, hashed and stored
//! (once per distinct content), then the upload is recorded as a `FileUploaded` event; a
//! delete records `FileDeleted` and removes the bytes when no other live file holds them.
//!
//! Storing and recording for one digest take turns on this node (a per-digest lock), so a
//! delete never removes bytes that an upload running beside it has just decided to reuse.
//! Across nodes an upload checks, once its event is recorded, that the bytes are still there
//! (a delete on another node may have removed them in between) and stores them again if not;
//! [`sweep`] removes what deletes left behind. See docs/files.md.

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use threadline_domain::file::{File, FileCommand, FileMeta};
use threadline_domain::values::AccountId;
use threadline_projections::files::{self, FileRow};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::files::sniff::{self, SniffError};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

impl From<SniffError> for ApiError {
    fn from(e: SniffError) -> Self {
        match e {
            SniffError::Empty => ApiError::invalid_field("file", e.to_string()),
            SniffError::Markup | SniffError::Unsupported => ApiError::Http {
                status: actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: ErrorCode::UnsupportedMediaType,
                detail: e.to_string(),
            },
        }
    }
}

impl From<crate::files::store::StoreError> for ApiError {
    fn from(e: crate::files::store::StoreError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<threadline_domain::file::FileError> for ApiError {
    fn from(e: threadline_domain::file::FileError) -> Self {
        match e {
            threadline_domain::file::FileError::NotFound => ApiError::NotFound("file"),
            threadline_domain::file::FileError::AlreadyExists => ApiError::Internal(e.to_string()),
        }
    }
}

/// Stores `bytes` named `filename` as a new file of the caller.
pub async fn upload(
    state: &AppState,
    caller: &Caller,
    filename: &str,
    bytes: Bytes,
    meta: &CommandMeta,
) -> Result<FileRow, ApiError> {
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.0))?;
    let filename = sniff::clean_filename(filename);
    let sniffed = sniff::sniff(&bytes, &filename)?;
    if bytes.len() > sniffed.class.limit() {
        return Err(ApiError::PayloadTooLarge {
            limit: sniffed.class.limit(),
        });
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let id = uuid::Uuid::now_v7().to_string();
    let _turn = state.file_digests.lock(sha256.clone()).await;
    state.files.put(&sha256, bytes.clone()).await?;
    let command = FileCommand::Upload {
        meta: FileMeta {
            owner,
            sha256: sha256.clone(),
            media_type: sniffed.media_type.to_owned(),
            size,
            filename,
        },
        at: Utc::now(),
    };
    state.run::<File>(&id, command, meta).await?;
    // Another node may have deleted the last other file of these bytes, and with it the
    // object, between our store and our event: put them back.
    if !state.files.exists(&sha256).await? {
        tracing::warn!(%sha256, "bytes removed by a concurrent delete; storing them again");
        state.files.put(&sha256, bytes).await?;
    }
    files::get(&state.db, caller.id(), &id)
        .await?
        .ok_or_else(|| ApiError::Unavailable("the new file is not visible yet".into()))
}

/// The caller's file `id` (another account's is a 404).
pub async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<FileRow, ApiError> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| ApiError::NotFound("file"))?;
    files::get(&state.db, caller.id(), &id.to_string())
        .await?
        .ok_or(ApiError::NotFound("file"))
}

/// Deletes `file`; its bytes go when no other live file holds them.
pub async fn delete(state: &AppState, file: &FileRow, meta: &CommandMeta) -> Result<(), ApiError> {
    let _turn = state.file_digests.lock(file.sha256.clone()).await;
    let command = FileCommand::Delete { at: Utc::now() };
    state.run::<File>(&file.id, command, meta).await?;
    if files::references(&state.db, &file.sha256).await? == 0 {
        // The event is the truth; bytes left behind by a failure here are only space.
        if let Err(e) = state.files.delete(&file.sha256).await {
            tracing::warn!(error = %e, sha256 = %file.sha256, "deleted file's bytes remain");
        }
    }
    Ok(())
}

/// How long bytes stay after they were last written before a sweep may remove them: an upload
/// still on its way to its event is never swept.
pub const SWEEP_GRACE: chrono::Duration = chrono::Duration::hours(1);
/// How often each node sweeps.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the stored bytes no live file holds that were last written before `now - grace`
/// (a delete whose removal failed, or lost a race, leaves such bytes behind). Returns how many
/// objects were removed. Idempotent, so every node may run it.
pub async fn sweep(state: &AppState, grace: chrono::Duration) -> Result<usize, ApiError> {
    let candidates = state.files.written_before(Utc::now() - grace).await?;
    let mut removed = 0;
    for sha256 in candidates {
        let _turn = state.file_digests.lock(sha256.clone()).await;
        if files::references(&state.db, &sha256).await? == 0 {
            state.files.delete(&sha256).await?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "swept unreferenced file bytes");
    }
    Ok(removed)
}

/// Sweeps every [`SWEEP_EVERY`] (the first one period after start) until `stop` turns true.
pub async fn sweep_periodically(
    state: actix_web::web::Data<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // The first sweep comes one period after start, not during it.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            return;
        }
        if let Err(e) = sweep(&state, SWEEP_GRACE).await {
            tracing::warn!(error = %e, "the file sweep failed; it runs again later");
        }
    }
}

/// An attached file, checked and typed, not stored yet when it came with the message.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Bytes from the message (a `data:` URL) or the web, sniffed.
    New {
        filename: String,
        media_type: &'static str,
        bytes: Bytes,
    },
    /// One of the caller's files.
    Stored(FileRow),
}

impl Prepared {
    pub fn media_type(&self) -> &str {
        match self {
            Prepared::New { media_type, .. } => media_type,
            Prepared::Stored(f) => &f.media_type,
        }
    }

    pub fn filename(&self) -> &str {
        match self {
            Prepared::New { filename, .. } => filename,
            Prepared::Stored(f) => &f.filename,
        }
    }
}

/// Reads, fetches and sniffs the files a message names, storing nothing yet (a send refused
/// for its model's capabilities leaves no files behind). Another account's file is a 404.
pub async fn prepare(
    state: &AppState,
    caller: &Caller,
    sources: Vec<crate::services::chat::FileSource>,
) -> Result<Vec<Prepared>, ApiError> {
    use crate::services::chat::FileSource;
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        let (filename, bytes) = match source {
            FileSource::Stored { id } => {
                out.push(Prepared::Stored(owned(state, caller, &id).await?));
                continue;
            }
            FileSource::Data { filename, bytes } => (filename, Bytes::from(bytes)),
            FileSource::Web { url, filename } => {
                let fetched = state.fetcher.fetch(&url).await.map_err(|e| {
                    ApiError::invalid_field("messages", format!("the file at {url}: {e}"))
                })?;
                let name = if filename == "file" {
                    fetched
                        .final_url
                        .path_segments()
                        .and_then(|mut s| s.next_back().map(str::to_owned))
                        .filter(|s| !s.is_empty())
                        .unwrap_or(filename)
                } else {
                    filename
                };
                (name, Bytes::from(fetched.bytes))
            }
        };
        let filename = sniff::clean_filename(&filename);
        let sniffed = sniff::sniff(&bytes, &filename)?;
        if bytes.len() > sniffed.class.limit() {
            return Err(ApiError::PayloadTooLarge {
                limit: sniffed.class.limit(),
            });
        }
        out.push(Prepared::New {
            filename,
            media_type: sniffed.media_type,
            bytes,
        });
    }
    Ok(out)
}

/// Stores what [`prepare`] read and returns the message's attachments.
pub async fn store_prepared(
    state: &AppState,
    caller: &Caller,
    prepared: Vec<Prepared>,
    meta: &CommandMeta,
) -> Result<Vec<threadline_domain::thread::Attachment>, ApiError> {
    let mut out = Vec::with_capacity(prepared.len());
    for p in prepared {
        let row = match p {
            Prepared::Stored(row) => row,
            Prepared::New {
                filename, bytes, ..
            } => upload(state, caller, &filename, bytes, meta).await?,
        };
        out.push(threadline_domain::thread::Attachment {
            file_id: row.id,
            sha256: row.sha256,
            media_type: row.media_type,
            filename: row.filename,
            size: u64::try_from(row.size).unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller_of(account: threadline_projections::accounts::AccountRow) -> Caller {
        Caller {
            account,
            session_id: "test".into(),
            admin_claim: false,
        }
    }

    #[tokio::test]
    async fn a_sweep_removes_old_unreferenced_bytes_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::for_tests(dir.path()).await;
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(state.projector.clone().run(stop_rx));
        let id = AccountId::generate();
        state
            .bus
            .execute::<threadline_domain::account::Account>(
                &id.to_string(),
                threadline_domain::account::AccountCommand::CreateAnonymous { at: Utc::now() },
                &CommandMeta::system(),
            )
            .await
            .unwrap();
        state.projector.catch_up_all().await.unwrap();
        let account = threadline_projections::accounts::account(&state.db, &id.to_string())
            .await
            .unwrap()
            .unwrap();
        let caller = caller_of(account);
        let meta = CommandMeta::system();
        let kept = upload(
            &state,
            &caller,
            "kept.txt",
            Bytes::from_static(b"kept"),
            &meta,
        )
        .await
        .unwrap();
        // Bytes a failed delete left behind: no file holds them.
        let orphan = hex::encode(Sha256::digest(b"orphan"));
        state
            .files
            .put(&orphan, Bytes::from_static(b"orphan"))
            .await
            .unwrap();
        assert_eq!(state.files.count().await.unwrap(), 2);

        // Fresh bytes are within the grace: an upload may be on its way to its event.
        assert_eq!(sweep(&state, SWEEP_GRACE).await.unwrap(), 0);
        assert_eq!(state.files.count().await.unwrap(), 2);

        // Past the grace the orphan goes; the bytes a live file holds stay.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(sweep(&state, chrono::Duration::zero()).await.unwrap(), 1);
        assert!(!state.files.exists(&orphan).await.unwrap());
        assert!(state.files.exists(&kept.sha256).await.unwrap());
        assert_eq!(sweep(&state, chrono::Duration::zero()).await.unwrap(), 0);
    }
}
