//! `threadline audit account <id>`: an account's ledger statement, printed (the same as
//! `GET /v1/admin/accounts/{id}/ledger`).

use super::{AuditCommand, Format, StorageArgs};
use crate::reports;

/// Runs an audit subcommand.
pub async fn run(
    storage: StorageArgs,
    command: AuditCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let AuditCommand::Account { id, format } = command;
    let db = super::report::open(&storage).await?;
    if threadline_projections::accounts::account(&db, &id)
        .await?
        .is_none()
    {
        return Err(format!("no account {id}").into());
    }
    let statement = reports::statement(&db, &id)
        .await
        .map_err(|e| reports::describe(&e))?;
    match format {
        Format::Table => print!("{}", statement.to_table()),
        Format::Csv => print!("{}", statement.to_csv()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&statement)?),
    }
    Ok(())
}
