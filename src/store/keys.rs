//! Per-account data keys: erasure by crypto-shredding.
//!
//! Each account that has personal data in the log gets a random AES-256-GCM data key, stored
//! in `account_keys` wrapped (AES-256-GCM) under the node's master key
//! (`THREADLINE_MASTER_KEY`, else `<data dir>/master.key`, created on first use; every node of
//! one database must share it). Before an event is written, each personal value of it (the
//! paths `threadline_domain::personal` lists) is replaced by the string `$enc:` + base64 of
//! `nonce ‖ ciphertext` of its JSON text, sealed with the key of the account the event's
//! metadata names as `subject`, which is also the associated data. Readers of the log open the
//! values again ([`KeyRing::open_events`]); the hash chain covers the sealed text. Erasing an account deletes its key row: its values can no longer be opened
//! and read as [`REDACTED`], while every event still decodes (a sealed value is a string
//! wherever it stands, and so is a redaction).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde_json::Value;
use threadline_domain::personal;
use threadline_projections::{Db, StoredEvent};

pub use threadline_domain::personal::REDACTED;

/// How a sealed value's text begins.
pub const SEALED: &str = "$enc:";

/// The metadata key naming the account whose key sealed an event's personal values.
pub const SUBJECT: &str = "subject";

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
    #[error("an event of type {0} carries personal data but names no data subject")]
    NoSubject(String),
    #[error("account {0} is erased: nothing more is written for it")]
    Erased(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl KeyError {
    /// As a database error, for readers that report those: a database failure as itself,
    /// anything else as a value that cannot be decoded.
    pub fn into_sqlx(self) -> sqlx::Error {
        match self {
            KeyError::Database(e) => e,
            e => sqlx::Error::Decode(Box::new(e)),
        }
    }
}

/// The key that wraps every data key.
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// Keys [`KeyRing::blind_index`]: derived from the master key, never stored.
    index: [u8; 32],
}

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
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadMasterKey)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        use hmac::{Hmac, Mac};
        let index = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&bytes)
            .map(|mac| mac.chain_update(b"threadline/blind-index/v1").finalize())
            .map(|out| out.into_bytes().into())
            .unwrap_or([0u8; 32]);
        MasterKey {
            cipher: Aes256Gcm::new(&bytes.into()),
            index,
        }
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
        seal_bytes(&self.cipher, account, key)
    }

    fn unwrap(&self, account: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let bytes = open_bytes(&self.cipher, account, wrapped)
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
    /// `value` sealed for `account`: a string [`SEALED`] + base64 of `nonce ‖ ciphertext` of
    /// its JSON text, with the account id as associated data.
    pub fn seal(&self, account: &str, value: &Value) -> Value {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let sealed = seal_bytes(&self.0, account, &plain);
        let mut text = String::with_capacity(SEALED.len() + sealed.len() * 4 / 3 + 4);
        text.push_str(SEALED);
        STANDARD.encode_string(sealed, &mut text);
        Value::String(text)
    }

    /// The value `account` sealed as `sealed` (`None` if it is not one of this key's).
    pub fn open(&self, account: &str, sealed: &str) -> Option<Value> {
        let bytes = STANDARD.decode(sealed.strip_prefix(SEALED)?).ok()?;
        let plain = open_bytes(&self.0, account, &bytes)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Whether `value` is a sealed value.
pub fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(SEALED))
}

/// The data subject an event's metadata names.
pub fn subject_of(metadata: &Value) -> Option<&str> {
    metadata.get(SUBJECT).and_then(Value::as_str)
}

/// Which SQLite pool a key is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Read,
    Write,
}

/// The data keys of this server, cached: an erased account is remembered as `None`. Cheap to
/// clone (one ring per process, shared).
#[derive(Clone)]
pub struct KeyRing(Arc<Ring>);

struct Ring {
    db: Db,
    master: MasterKey,
    cache: Mutex<HashMap<String, Option<Arc<DataKey>>>>,
}

impl KeyRing {
    pub fn new(db: Db, master: MasterKey) -> Self {
        Self(Arc::new(Ring {
            db,
            master,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// The ring of `db` under the master key `explicit` (the environment's) or else
    /// `<data_dir>/master.key` (see [`MasterKey::load`]).
    pub fn load(db: Db, explicit: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        Ok(Self::new(db, MasterKey::load(explicit, data_dir)?))
    }

    /// A ring with a random master key held only in memory (tests, throwaway databases).
    pub fn ephemeral(db: Db) -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::new(db, MasterKey::from_bytes(bytes))
    }

    fn cached(&self, account: &str) -> Option<Option<Arc<DataKey>>> {
        self.0.cache.lock().ok()?.get(account).cloned()
    }

    fn remember(&self, account: &str, key: Option<Arc<DataKey>>) {
        if let Ok(mut cache) = self.0.cache.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(account.to_owned(), key);
        }
    }

    /// A stable, keyed digest of `text` (hex HMAC-SHA-256 under a key derived from the master
    /// key): a stream id that finds a value (an email) without holding it.
    pub fn blind_index(&self, text: &str) -> String {
        use hmac::{Hmac, Mac};
        match <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0.master.index) {
            Ok(mac) => hex::encode(mac.chain_update(text.as_bytes()).finalize().into_bytes()),
            Err(_) => String::new(),
        }
    }

    /// Forgets `account`'s key on this node (another node erased it).
    pub fn forget(&self, account: &str) {
        self.remember(account, None);
    }

    /// Seals the personal values of `payload` (an event of `event_type`) with `subject`'s
    /// key. An event without personal values needs no subject.
    pub async fn seal_payload(
        &self,
        subject: Option<&str>,
        event_type: &str,
        payload: &mut Value,
    ) -> Result<(), KeyError> {
        if personal::paths(event_type).is_empty() {
            return Ok(());
        }
        // An event whose personal values are all unset (a thread without a title) needs no key.
        let any = personal::each_value(event_type, payload, &mut |_| Err(())).is_err();
        if !any {
            return Ok(());
        }
        let subject = subject.ok_or_else(|| KeyError::NoSubject(event_type.to_owned()))?;
        let key = self
            .for_writing(subject)
            .await?
            .ok_or_else(|| KeyError::Erased(subject.to_owned()))?;
        personal::each_value::<KeyError>(event_type, payload, &mut |value| {
            *value = key.seal(subject, value);
            Ok(())
        })
    }

    /// Opens the sealed values of each event (in place); what an erased key sealed reads as
    /// [`REDACTED`]. Events written before sealing (version 1) are left as they are.
    pub async fn open_events(&self, events: &mut [StoredEvent]) -> Result<(), KeyError> {
        for event in events.iter_mut() {
            if !personal::is_sealed(&event.event_type, &event.event_version) {
                continue;
            }
            let subject = subject_of(&event.metadata).map(str::to_owned);
            self.open_payload(subject.as_deref(), &event.event_type, &mut event.payload)
                .await?;
        }
        Ok(())
    }

    /// Opens the sealed values of one stored payload of `event_type` at `event_version`.
    pub async fn open_stored(
        &self,
        metadata: &Value,
        event_type: &str,
        event_version: &str,
        payload: &mut Value,
    ) -> Result<(), KeyError> {
        if !personal::is_sealed(event_type, event_version) {
            return Ok(());
        }
        self.open_payload(subject_of(metadata), event_type, payload)
            .await
    }

    async fn open_payload(
        &self,
        subject: Option<&str>,
        event_type: &str,
        payload: &mut Value,
    ) -> Result<(), KeyError> {
        // Most sealed-version events have nothing sealed (a thread created without a title):
        // look the key up only for one that has.
        let any = personal::each_value(event_type, payload, &mut |v| {
            if is_sealed(v) { Err(()) } else { Ok(()) }
        })
        .is_err();
        if !any {
            return Ok(());
        }
        let key = match subject {
            Some(subject) => self.for_reading(subject).await?,
            None => None,
        };
        let subject = subject.unwrap_or_default();
        personal::each_value::<KeyError>(event_type, payload, &mut |value| {
            if let Some(text) = value.as_str().filter(|s| s.starts_with(SEALED)) {
                *value = key
                    .as_ref()
                    .and_then(|k| k.open(subject, text))
                    .unwrap_or_else(|| Value::String(REDACTED.into()));
            }
            Ok(())
        })
    }

    /// The key to open `account`'s values with; `None` once it is erased.
    async fn for_reading(&self, account: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(key) = self.cached(account) {
            return Ok(key);
        }
        // The read pool: a projector opens events inside its transaction on SQLite's one
        // writer connection. A sealed value's key was committed before its event was.
        let key = self.read(account, Pool::Read).await?;
        // Only an erasure is remembered: a key missing for any other reason is looked up again.
        if key.is_none() && self.is_erased(account).await? {
            self.remember(account, None);
        }
        Ok(key)
    }

    /// The key to seal `account`'s data with, created on first use (several nodes creating
    /// one at once agree on the first one written). `None` once the account is erased.
    pub async fn for_writing(&self, account: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(Some(key)) = self.cached(account) {
            return Ok(Some(key));
        }
        if let Some(key) = self.read(account, Pool::Write).await? {
            return Ok(Some(key));
        }
        if self.is_erased(account).await? {
            self.remember(account, None);
            return Ok(None);
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let wrapped = self.0.master.wrap(account, &bytes);
        let now = chrono::Utc::now().timestamp_micros();
        let insert = "INSERT INTO account_keys (account_id, wrapped_key, created_at) \
                      VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING";
        match &self.0.db {
            Db::Sqlite { writer, .. } => {
                sqlx::query(insert)
                    .bind(account)
                    .bind(&wrapped)
                    .bind(now)
                    .execute(writer)
                    .await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(insert)
                    .bind(account)
                    .bind(&wrapped)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
        }
        self.read(account, Pool::Write).await
    }

    /// The key of `account` as stored (and cached), if it has one.
    async fn read(&self, account: &str, pool: Pool) -> Result<Option<Arc<DataKey>>, KeyError> {
        let select = "SELECT wrapped_key FROM account_keys WHERE account_id = $1";
        let wrapped: Option<Vec<u8>> = match &self.0.db {
            Db::Sqlite { reader, .. } if pool == Pool::Read => {
                sqlx::query_scalar(select)
                    .bind(account)
                    .fetch_optional(reader)
                    .await?
            }
            // The writer: a key another request just created must be seen.
            Db::Sqlite { writer, .. } => {
                sqlx::query_scalar(select)
                    .bind(account)
                    .fetch_optional(writer)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(select)
                    .bind(account)
                    .fetch_optional(pool)
                    .await?
            }
        };
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let key = Arc::new(self.0.master.unwrap(account, &wrapped)?);
        self.remember(account, Some(key.clone()));
        Ok(Some(key))
    }

    async fn is_erased(&self, account: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = threadline_projections::on_read!(&self.0.db, pool =>
            sqlx::query_scalar("SELECT erased_at FROM erased_accounts WHERE account_id = $1")
                .bind(account)
                .fetch_optional(pool)
                .await)?;
        Ok(found.is_some())
    }

    /// Deletes `account`'s key (and remembers that it is erased, so no new one is made):
    /// whatever was sealed with it reads as [`REDACTED`] from now on. Returns whether a key
    /// existed.
    pub async fn erase(&self, account: &str) -> Result<bool, sqlx::Error> {
        let now = chrono::Utc::now().timestamp_micros();
        let mut tx = self.0.db.begin().await?;
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
    use serde_json::json;

    fn key() -> DataKey {
        DataKey(Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap())
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_account() {
        let k = key();
        let value = json!({"text": "a unique phrase", "n": 3});
        let sealed = k.seal("acc-1", &value);
        let text = sealed.as_str().unwrap();
        assert!(text.starts_with(SEALED) && !text.contains("unique phrase"));
        assert!(is_sealed(&sealed));
        assert_eq!(k.open("acc-1", text), Some(value));
        // The account is associated data: the same text under another account fails.
        assert_eq!(k.open("acc-2", text), None);
        let other = DataKey(Aes256Gcm::new_from_slice(&[8u8; 32]).unwrap());
        assert_eq!(other.open("acc-1", text), None);
        assert_eq!(k.open("acc-1", "$enc:not base64!"), None);
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

    fn message(text: &str) -> Value {
        json!({"UserMessagePosted": {"message_id": "m1", "parent_id": null, "text": text,
            "attachments": [{"file_id": "f1", "sha256": "abc", "media_type": "image/png",
                             "filename": "me.png", "size": 3}],
            "at": "2026-12-01T00:00:00Z"}})
    }

    fn stored(payload: Value, version: &str, subject: &str) -> StoredEvent {
        StoredEvent {
            position: 1,
            tx_id: 0,
            aggregate_type: "Thread".into(),
            aggregate_id: "t1".into(),
            sequence: 2,
            event_type: "UserMessagePosted".into(),
            event_version: version.into(),
            payload,
            metadata: json!({ SUBJECT: subject }),
            event_id: "e".into(),
            recorded_at: 0,
        }
    }

    #[tokio::test]
    async fn events_are_sealed_opened_and_redacted_once_erased() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::connect(None, dir.path()).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let ring = KeyRing::load(db.clone(), None, dir.path()).unwrap();
        let mut payload = message("a unique phrase");
        ring.seal_payload(Some("acc-1"), "UserMessagePosted", &mut payload)
            .await
            .unwrap();
        let text = payload.to_string();
        assert!(!text.contains("unique phrase") && !text.contains("me.png"));
        assert!(
            text.contains("\"m1\"") && text.contains("image/png"),
            "ids stay clear"
        );
        let sealed = stored(payload, "2.0", "acc-1");

        // Another node (a fresh ring on the same database and master key) opens it.
        let other = KeyRing::load(db.clone(), None, dir.path()).unwrap();
        let mut events = vec![sealed.clone()];
        other.open_events(&mut events).await.unwrap();
        assert_eq!(events[0].payload, message("a unique phrase"));

        // An event written before sealing (version 1) is read as it is, even if a user
        // wrote something that looks sealed.
        let mut old = vec![stored(message("$enc:hello"), "1.0", "acc-1")];
        other.open_events(&mut old).await.unwrap();
        assert_eq!(old[0].payload, message("$enc:hello"));

        assert!(ring.erase("acc-1").await.unwrap());
        let fresh = KeyRing::load(db.clone(), None, dir.path()).unwrap();
        let mut events = vec![sealed];
        fresh.open_events(&mut events).await.unwrap();
        let body = &events[0].payload["UserMessagePosted"];
        assert_eq!(body["text"], json!(REDACTED));
        assert_eq!(body["attachments"][0]["filename"], json!(REDACTED));
        assert_eq!(body["attachments"][0]["size"], json!(3));
        assert!(
            fresh.for_writing("acc-1").await.unwrap().is_none(),
            "no new key after erasure"
        );
        let mut more = message("again");
        let refused = fresh
            .seal_payload(Some("acc-1"), "UserMessagePosted", &mut more)
            .await;
        assert!(matches!(refused, Err(KeyError::Erased(_))));
        assert!(matches!(
            fresh
                .seal_payload(None, "UserMessagePosted", &mut more)
                .await,
            Err(KeyError::NoSubject(_))
        ));
        assert!(fresh.for_writing("acc-2").await.unwrap().is_some());

        // A node with another master key cannot unwrap the keys: an error, never a
        // redaction (which a projection would then store).
        let wrong = KeyRing::ephemeral(db.clone());
        let mut payload = message("x");
        fresh
            .seal_payload(Some("acc-2"), "UserMessagePosted", &mut payload)
            .await
            .unwrap();
        let mut events = vec![stored(payload, "2.0", "acc-2")];
        assert!(matches!(
            wrong.open_events(&mut events).await,
            Err(KeyError::Unwrap(_))
        ));
    }
}
