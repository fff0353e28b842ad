//! Uploading and deleting attachments: the bytes are sniffed, limited, hashed and stored
//! (once per distinct content), then the upload is recorded as a `FileUploaded` event; a
//! delete records `FileDeleted` and removes the bytes when no other live file holds them.
//!
//! Storing and recording for one digest take turns on this node (a per-digest lock), so a
//! delete never removes bytes that an upload running beside it has just decided to reuse.
//! Across nodes the same race is possible and harmless only in one direction; see
//! docs/files.md.

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
    state.files.put(&sha256, bytes).await?;
    let command = FileCommand::Upload {
        meta: FileMeta {
            owner,
            sha256,
            media_type: sniffed.media_type.to_owned(),
            size,
            filename,
        },
        at: Utc::now(),
    };
    state.run::<File>(&id, command, meta).await?;
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
