//! `threadline verify-log`: recomputes the log's hash chain and compares it with the seals.

use super::StorageArgs;
use crate::store::{log, seal};

/// Runs `verify-log`: prints what was checked and the head hash; fails (exit status 1) naming
/// the first event that does not match.
pub async fn run(storage: StorageArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (db, _) = storage.open().await?;
    let (head, _) = seal::head(&db).await?;
    let total = log::count(&db).await?.max(1) as u64;
    let bar = super::progress::bar(total, "verify-log");
    let found = seal::verify(&db, &|done| bar.set_position(done.min(total))).await?;
    bar.finish_and_clear();
    if let Some(mismatch) = found.mismatch {
        println!(
            "chain broken after {} matching events: {mismatch}",
            found.checked
        );
        return Err(format!("the log does not match its seals: {mismatch}").into());
    }
    println!(
        "ok: {} events match their seals; head {} hash {}",
        found.checked,
        log::cursor_id(head),
        hex::encode(found.head_hash)
    );
    if found.unsealed > 0 {
        println!("{} newer events are not sealed yet", found.unsealed);
    }
    Ok(())
}
