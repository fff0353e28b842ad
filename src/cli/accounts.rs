//! `threadline accounts erase ID`.

use super::{AccountsCommand, StorageArgs};
use crate::files::FileStore;
use crate::projector::Projector;
use crate::services::erasure::Eraser;
use crate::store::bus::{CommandBus, CommandMeta};

/// Runs an accounts subcommand.
pub async fn run(
    storage: StorageArgs,
    command: AccountsCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let AccountsCommand::Erase { id, s3 } = command;
    let (db, keys) = storage.open().await?;
    let files = FileStore::open(&s3.storage(), &storage.data_dir)?;
    let projector = Projector::new(db.clone(), keys.clone());
    projector.prepare().await?;
    let bus = CommandBus::new(db.clone(), keys);
    let eraser = Eraser {
        db: &db,
        bus: &bus,
        projector: &projector,
        files: &files,
    };
    let erased = eraser.erase(&id, &CommandMeta::operator()).await?;
    println!(
        "erased {} ({} account(s), {} file(s)); {} projections rebuilt in {:.2}s",
        erased.account_id,
        erased.accounts.len(),
        erased.files,
        erased.projections_rebuilt,
        erased.seconds
    );
    Ok(())
}
