//! Per-account data keys, for erasure by crypto-shredding (work in progress: nothing encrypts
//! with them yet; see the branch note).
//!
//! Each account that has personal data in the log gets a random AES-256-GCM data key, stored
//! in `account_keys` wrapped (AES-256-GCM) under the node's master key
//! (`THREADLINE_MASTER_KEY`, else `<data dir>/master.key`, created on first use). A personal
//! field of an event is stored as an envelope `{"$enc": {"k": account, "n": nonce, "c":
//! ciphertext}}` of its JSON value, with the account id as associated data. Erasing an account
//! deletes its key row: its envelopes can no longer be opened and read as [`REDACTED`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde_json::{Value, json};
use threadline_projections::Db;

/// What an erased (or unreadable) personal value reads as.
pub const REDACTED: &str = "[erased]";

/// The key of an envelope in a payload.
const ENVELOPE: &str = "$enc";

/// Why keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key must be 32 bytes in base64 (openssl rand -base64 32)")]
    BadMasterKey,
    #[error("cannot read or create the master key file {path}: {source}")]
    MasterKeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the data key of {0} cannot be unwrapped with this master key")]
    Unwrap(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The key that wraps every data key.
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// A master key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::BadMasterKey)?;
        Aes256Gcm::new_from_slice(&bytes)
            .map(MasterKey)
            .map_err(|_| KeyError::BadMasterKey)
    }

    /// `explicit` (the environment's) when given, else `<data_dir>/master.key`, written with
    /// a new random key (mode 0600) when it does not exist.
    pub fn load(explicit: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(text) = explicit {
            return Self::from_base64(text);
        }
        let path = data_dir.join("master.key");
        let file_error = |source| KeyError::MasterKeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let text = STANDARD.encode(bytes);
                std::fs::create_dir_all(data_dir).map_err(file_error)?;
                write_private(&path, &text).map_err(file_error)?;
                Self::from_base64(&text)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    fn wrap(&self, account: &str, key: &[u8; 32]) -> Vec<u8> {
        seal_bytes(&self.0, account, key)
    }

    fn unwrap(&self, account: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let bytes = open_bytes(&self.0, account, wrapped)
            .ok_or_else(|| KeyError::Unwrap(account.into()))?;
        Aes256Gcm::new_from_slice(&bytes)
            .map(DataKey)
            .map_err(|_| KeyError::Unwrap(account.into()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// `nonce ‖ ciphertext` of `plain` with `aad` as associated data.
fn seal_bytes(cipher: &Aes256Gcm, aad: &str, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plain,
        aad: aad.as_bytes(),
    };
    let mut out = nonce.to_vec();
    // Encryption into a Vec fails only when the message is too long for GCM (64 GiB).
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default(),
    );
    out
}

fn open_bytes(cipher: &Aes256Gcm, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

/// One account's data key.
pub struct DataKey(Aes256Gcm);

impl DataKey {
    /// `value` as an envelope of account `account`.
    pub fn seal(&self, account: &str, value: &Value) -> Value {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let sealed = seal_bytes(&self.0, account, &plain);
        json!({ ENVELOPE: { "k": account, "c": STANDARD.encode(sealed) } })
    }

    /// The value inside `envelope` (`None` if it is not one of this key's).
    pub fn open(&self, envelope: &Value) -> Option<Value> {
        let (account, sealed) = parts(envelope)?;
        let plain = open_bytes(&self.0, account, &sealed)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// The account and sealed bytes of an envelope.
fn parts(value: &Value) -> Option<(&str, Vec<u8>)> {
    let inner = value.as_object()?.get(ENVELOPE)?;
    let account = inner.get("k")?.as_str()?;
    let sealed = STANDARD.decode(inner.get("c")?.as_str()?).ok()?;
    Some((account, sealed))
}

/// The account whose key sealed `value`, if it is an envelope.
pub fn sealed_by(value: &Value) -> Option<&str> {
    value.as_object()?.get(ENVELOPE)?.get("k")?.as_str()
}

/// The data keys of this server, cached: an erased account is remembered as `None`.
pub struct KeyRing {
    db: Db,
    master: MasterKey,
    cache: Mutex<HashMap<String, Option<Arc<DataKey>>>>,
}

impl KeyRing {
    pub fn new(db: Db, master: MasterKey) -> Self {
        Self {
            db,
            master,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, account: &str) -> Option<Option<Arc<DataKey>>> {
        self.cache.lock().ok()?.get(account).cloned()
    }

    fn remember(&self, account: &str, key: Option<Arc<DataKey>>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(account.to_owned(), key);
        }
    }

    /// The key to seal `account`'s data with, created on first use (several nodes creating
    /// one at once agree on the first one written). `None` once the account is erased.
    pub async fn for_writing(&self, account: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(Some(key)) = self.cached(account) {
            return Ok(Some(key));
        }
        if let Some(key) = self.read(account).await? {
            return Ok(Some(key));
        }
        if self.is_erased(account).await? {
            self.remember(account, None);
            return Ok(None);
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let wrapped = self.master.wrap(account, &bytes);
        let now = chrono::Utc::now().timestamp_micros();
        match &self.db {
            Db::Sqlite { writer, .. } => {
                sqlx::query(
                    "INSERT INTO account_keys (account_id, wrapped_key, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING",
                )
                .bind(account)
                .bind(&wrapped)
                .bind(now)
                .execute(writer)
                .await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO account_keys (account_id, wrapped_key, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING",
                )
                .bind(account)
                .bind(&wrapped)
                .bind(now)
                .execute(pool)
                .await?;
            }
        }
        self.read(account).await
    }

    /// The key of `account` as stored (and cached), if it has one.
    async fn read(&self, account: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        let wrapped: Option<Vec<u8>> = match &self.db {
            // The writer: a key another request just created must be seen.
            Db::Sqlite { writer, .. } => {
                sqlx::query_scalar("SELECT wrapped_key FROM account_keys WHERE account_id = $1")
                    .bind(account)
                    .fetch_optional(writer)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT wrapped_key FROM account_keys WHERE account_id = $1")
                    .bind(account)
                    .fetch_optional(pool)
                    .await?
            }
        };
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let key = Arc::new(self.master.unwrap(account, &wrapped)?);
        self.remember(account, Some(key.clone()));
        Ok(Some(key))
    }

    async fn is_erased(&self, account: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = threadline_projections::on_read!(&self.db, pool =>
            sqlx::query_scalar("SELECT erased_at FROM erased_accounts WHERE account_id = $1")
                .bind(account)
                .fetch_optional(pool)
                .await)?;
        Ok(found.is_some())
    }

    /// Opens `value` when it is an envelope (a redaction when its key is gone); anything
    /// else is returned as it is.
    pub async fn open(&self, value: &Value) -> Result<Value, KeyError> {
        let Some(account) = sealed_by(value) else {
            return Ok(value.clone());
        };
        let key = match self.cached(account) {
            Some(key) => key,
            None => {
                let key = self.read(account).await?;
                if key.is_none() {
                    self.remember(account, None);
                }
                key
            }
        };
        Ok(key
            .and_then(|k| k.open(value))
            .unwrap_or_else(|| Value::String(REDACTED.into())))
    }

    /// Deletes `account`'s key (and remembers that it is erased, so no new one is made):
    /// whatever was sealed with it reads as [`REDACTED`] from now on. Returns whether a key
    /// existed.
    pub async fn erase(&self, account: &str) -> Result<bool, sqlx::Error> {
        let now = chrono::Utc::now().timestamp_micros();
        let mut tx = self.db.begin().await?;
        let deleted = tx
            .execute(&threadline_projections::Stmt::new(
                "DELETE FROM account_keys WHERE account_id = $1",
                vec![account.into()],
            ))
            .await?;
        tx.execute(&threadline_projections::Stmt::new(
            "INSERT INTO erased_accounts (account_id, erased_at) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO NOTHING",
            vec![account.into(), now.into()],
        ))
        .await?;
        tx.commit().await?;
        self.remember(account, None);
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey(Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap())
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_account() {
        let k = key();
        let value = json!({"text": "a unique phrase", "n": 3});
        let sealed = k.seal("acc-1", &value);
        assert!(!sealed.to_string().contains("unique phrase"));
        assert_eq!(sealed_by(&sealed), Some("acc-1"));
        assert_eq!(k.open(&sealed), Some(value));
        // The account is associated data: moving the envelope to another account fails.
        let moved = json!({"$enc": {"k": "acc-2", "c": sealed["$enc"]["c"]}});
        assert_eq!(k.open(&moved), None);
        let other = DataKey(Aes256Gcm::new_from_slice(&[8u8; 32]).unwrap());
        assert_eq!(other.open(&sealed), None);
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let k = key();
        assert_ne!(k.seal("a", &json!("x")), k.seal("a", &json!("x")));
    }

    #[test]
    fn the_master_key_file_is_made_once_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load(None, dir.path()).unwrap();
        let wrapped = first.wrap("acc", &[1u8; 32]);
        let again = MasterKey::load(None, dir.path()).unwrap();
        assert!(again.unwrap("acc", &wrapped).is_ok());
        assert!(again.unwrap("other", &wrapped).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        let env = STANDARD.encode([9u8; 32]);
        assert!(MasterKey::load(Some(&env), dir.path()).is_ok());
    }

    #[tokio::test]
    async fn a_key_is_made_once_kept_and_erased_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::connect(None, dir.path()).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let ring = KeyRing::new(db.clone(), MasterKey::load(None, dir.path()).unwrap());
        let key = ring.for_writing("acc-1").await.unwrap().unwrap();
        let sealed = key.seal("acc-1", &json!("ada@example.com"));
        // Another node (a fresh ring on the same database and master key) reads the same key.
        let other = KeyRing::new(db.clone(), MasterKey::load(None, dir.path()).unwrap());
        assert_eq!(other.open(&sealed).await.unwrap(), json!("ada@example.com"));
        let again = other.for_writing("acc-1").await.unwrap().unwrap();
        assert_eq!(again.open(&sealed), Some(json!("ada@example.com")));
        assert_eq!(ring.open(&json!("plain")).await.unwrap(), json!("plain"));

        assert!(ring.erase("acc-1").await.unwrap());
        assert_eq!(ring.open(&sealed).await.unwrap(), json!(REDACTED));
        let fresh = KeyRing::new(db.clone(), MasterKey::load(None, dir.path()).unwrap());
        assert_eq!(fresh.open(&sealed).await.unwrap(), json!(REDACTED));
        assert!(
            fresh.for_writing("acc-1").await.unwrap().is_none(),
            "no new key after erasure"
        );
        assert!(fresh.for_writing("acc-2").await.unwrap().is_some());
    }
}
