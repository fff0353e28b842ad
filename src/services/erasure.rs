//! Erasing an account (the right to be forgotten) by crypto-shredding.
//!
//! The log is never rewritten: the account's personal values in it were sealed with its data
//! key (`store::keys`), and erasing deletes that key. In order:
//!
//! 1. The accounts to erase: the account and every anonymous account linked into it (their
//!    threads and history became its own).
//! 2. Their files are deleted (`FileDeleted`), and the email's claim released, so the address
//!    can register again.
//! 3. `AccountErased` on each account: its sessions and API keys stop working on every node.
//! 4. Each data key is deleted: from now on every reader of the log reads the sealed values
//!    as redactions.
//! 5. The files' bytes leave the file store unless another live file holds the same bytes.
//! 6. Every projection is rebuilt from the log (online, as `projections rebuild` does), so no
//!    read model keeps a copy; on SQLite the WAL is checkpointed and freed pages are zeroed
//!    (`secure_delete`), so the database file keeps none either.
//!
//! Ledger, usage and facts hold no personal values: their totals are the same after.

use chrono::Utc;
use threadline_domain::account::{Account, AccountCommand, AccountError};
use threadline_domain::email::{EmailCommand, EmailRegistration};
use threadline_domain::file::{File, FileCommand};
use threadline_projections::{Db, accounts, files};

use crate::files::FileStore;
use crate::projector::{Projector, rebuild};
use crate::store::bus::{CommandBus, CommandError, CommandMeta};

/// What an erasure did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erased {
    pub account_id: String,
    /// The account and the anonymous accounts linked into it.
    pub accounts: Vec<String>,
    /// The files deleted.
    pub files: usize,
    pub projections_rebuilt: usize,
    pub seconds: f64,
}

/// Why an account could not be erased.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no such account")]
    NotFound,
    #[error("the account is already erased")]
    AlreadyErased,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Command(String),
    #[error("cannot rebuild the projections: {0}")]
    Projector(#[from] crate::projector::ProjectorError),
}

impl<E: std::error::Error> From<CommandError<E>> for ErasureError {
    fn from(e: CommandError<E>) -> Self {
        ErasureError::Command(e.to_string())
    }
}

/// What erasing needs: the server's (or a command's) storage.
pub struct Eraser<'a> {
    pub db: &'a Db,
    pub bus: &'a CommandBus,
    pub projector: &'a Projector,
    pub files: &'a FileStore,
}

impl Eraser<'_> {
    /// Erases `account_id` (see the module documentation), its events carrying `meta`.
    pub async fn erase(
        &self,
        account_id: &str,
        meta: &CommandMeta,
    ) -> Result<Erased, ErasureError> {
        let started = std::time::Instant::now();
        self.projector.catch_up_all().await?;
        let account = accounts::account(self.db, account_id)
            .await?
            .ok_or(ErasureError::NotFound)?;
        if account.kind == "erased" {
            return Err(ErasureError::AlreadyErased);
        }
        let mut subjects = vec![account_id.to_owned()];
        subjects.extend(accounts::linked_into(self.db, account_id).await?);

        let mut digests = Vec::new();
        for subject in &subjects {
            for file in files::of_owner(self.db, subject).await? {
                let deleted = self
                    .bus
                    .execute::<File>(&file.id, FileCommand::Delete { at: Utc::now() }, meta)
                    .await;
                match deleted {
                    Ok(_) | Err(CommandError::Rejected(_)) => digests.push((file.sha256, file.id)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if let (Some(email), Ok(id)) = (
            &account.email,
            threadline_domain::values::AccountId::parse(account_id),
        ) {
            let stream = super::accounts::email_stream(self.bus.appender().keys(), email);
            let release = EmailCommand::Release {
                account_id: id,
                at: Utc::now(),
            };
            self.bus
                .execute::<EmailRegistration>(&stream, release, meta)
                .await?;
        }
        for subject in &subjects {
            let erase = AccountCommand::Erase { at: Utc::now() };
            match self.bus.execute::<Account>(subject, erase, meta).await {
                Ok(_) | Err(CommandError::Rejected(AccountError::Erased)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let keys = self.bus.appender().keys();
        for subject in &subjects {
            keys.erase(subject).await?;
        }

        self.projector.catch_up_all().await?;
        // Whether other live files hold the same bytes, leaving out the files just deleted: on
        // PostgreSQL the catch-up may stop short of their deletions while an older transaction
        // of the node is still open.
        let deleted: std::collections::HashSet<&str> =
            digests.iter().map(|(_, id)| id.as_str()).collect();
        let mut shas: Vec<&str> = digests.iter().map(|(sha, _)| sha.as_str()).collect();
        shas.sort_unstable();
        shas.dedup();
        for sha256 in shas {
            let holders = files::holders(self.db, sha256).await?;
            if holders.iter().all(|id| deleted.contains(id.as_str()))
                && let Err(e) = self.files.delete(sha256).await
            {
                tracing::warn!(error = %e, "an erased account's file bytes remain; the sweep retries");
            }
        }

        let names: Vec<String> = self
            .projector
            .projections()
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        rebuild::rebuild_all(self.projector, &names, &|_| {}).await?;
        if let Db::Sqlite { writer, .. } = self.db {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(writer)
                .await?;
        }
        tracing::info!(
            account = account_id,
            accounts = subjects.len(),
            files = digests.len(),
            "account erased"
        );
        Ok(Erased {
            account_id: account_id.to_owned(),
            accounts: subjects,
            files: digests.len(),
            projections_rebuilt: names.len(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
