//! Where attachment bytes live: a directory under the data dir (the default) or an
//! S3-compatible bucket, behind one `object_store` handle. Objects are named by their SHA-256
//! (`sha256/ab/abcdef…`), so the same bytes are stored once however many files name them.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use secrecy::{ExposeSecret, SecretString};

/// Which store to use (`THREADLINE_S3_*`; a local directory when no bucket is set).
#[derive(Debug, Clone, Default)]
pub enum StorageSettings {
    /// `<data_dir>/files`.
    #[default]
    Local,
    S3(S3Settings),
}

/// An S3-compatible bucket. Credentials left unset come from the usual `AWS_*` variables.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `THREADLINE_S3_BUCKET`.
    pub bucket: String,
    /// `THREADLINE_S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `THREADLINE_S3_ENDPOINT`: another S3-compatible service (MinIO, R2, a local test
    /// server); path-style requests are used then, and `http://` is allowed.
    pub endpoint: Option<String>,
    /// `THREADLINE_S3_PREFIX`: a key prefix inside the bucket.
    pub prefix: String,
    /// `THREADLINE_S3_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `THREADLINE_S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the stored bytes are missing")]
    Missing,
    #[error("file storage failed: {0}")]
    Backend(#[from] object_store::Error),
    #[error("file storage cannot start: {0}")]
    Setup(String),
}

/// The attachment store.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    /// `local` or `s3`, for logs and metrics.
    kind: &'static str,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl FileStore {
    /// Opens the store `settings` name (creating `<data_dir>/files` for the local one).
    pub fn open(
        settings: &StorageSettings,
        data_dir: &std::path::Path,
    ) -> Result<Self, StoreError> {
        match settings {
            StorageSettings::Local => {
                let dir = data_dir.join("files");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StoreError::Setup(format!("{}: {e}", dir.display())))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Self {
                    inner: Arc::new(local),
                    prefix: String::new(),
                    kind: "local",
                })
            }
            StorageSettings::S3(s3) => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(id) = &s3.access_key_id {
                    builder = builder.with_access_key_id(id);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose_secret());
                }
                Ok(Self {
                    inner: Arc::new(builder.build()?),
                    prefix: s3.prefix.trim_matches('/').to_owned(),
                    kind: "s3",
                })
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The object name of the bytes with hex digest `sha256`.
    pub fn path_of(&self, sha256: &str) -> Path {
        let shard = sha256.get(..2).unwrap_or("00");
        if self.prefix.is_empty() {
            Path::from(format!("sha256/{shard}/{sha256}"))
        } else {
            Path::from(format!("{}/sha256/{shard}/{sha256}", self.prefix))
        }
    }

    /// Stores `bytes` under `sha256` unless they are there already (the same bytes are the
    /// same object; writing them again would only cost time).
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.path_of(sha256);
        match self.inner.head(&path).await {
            Ok(meta) if meta.size == bytes.len() as u64 => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The bytes under `sha256`, as a stream.
    pub async fn get(
        &self,
        sha256: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        match self.inner.get(&self.path_of(sha256)).await {
            Ok(found) => Ok(found.into_stream().map_err(StoreError::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes under `sha256`, whole (for sending to a provider).
    pub async fn read(&self, sha256: &str) -> Result<Bytes, StoreError> {
        match self.inner.get(&self.path_of(sha256)).await {
            Ok(found) => Ok(found.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the bytes under `sha256` (gone already is fine).
    pub async fn delete(&self, sha256: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path_of(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The digests of the objects last written before `cutoff` (what a sweep may consider).
    pub async fn written_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = if self.prefix.is_empty() {
            Path::from("sha256")
        } else {
            Path::from(format!("{}/sha256", self.prefix))
        };
        let mut listed = self.inner.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(object) = listed.next().await {
            let object = object?;
            if object.last_modified < cutoff
                && let Some(name) = object.location.filename()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// Whether the bytes under `sha256` are there.
    pub async fn exists(&self, sha256: &str) -> Result<bool, StoreError> {
        match self.inner.head(&self.path_of(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How many objects the store holds (tests and `doctor`-style checks; lists the prefix).
    pub async fn count(&self) -> Result<usize, StoreError> {
        let prefix = if self.prefix.is_empty() {
            Path::from("sha256")
        } else {
            Path::from(format!("{}/sha256", self.prefix))
        };
        let mut listed = self.inner.list(Some(&prefix));
        let mut n = 0;
        while let Some(object) = listed.next().await {
            object?;
            n += 1;
        }
        Ok(n)
    }
}
