//! `threadline migrate`.

use super::StorageArgs;
use crate::store;

/// Applies pending migrations and reports them.
pub async fn run(storage: StorageArgs) -> Result<(), Box<dyn std::error::Error>> {
    let db = store::connect(storage.database_url.as_deref(), &storage.data_dir).await?;
    let ran = store::migrate(&db).await?;
    if ran.is_empty() {
        println!("database is up to date");
    } else {
        println!("applied migrations: {ran:?}");
    }
    Ok(())
}
