//! `threadline report usage …` and `threadline audit account <id>`: the admin reports, printed.
//! The projections are brought up to date with the log first.

use crate::cli::{AuditCommand, Format, ReportCommand, StorageArgs};
use crate::projector::Projector;
use crate::reports::{self, UsageQuery};
use crate::store;

async fn open(
    storage: &StorageArgs,
) -> Result<threadline_projections::Db, Box<dyn std::error::Error>> {
    let db = store::connect(storage.database_url.as_deref(), &storage.data_dir).await?;
    store::migrate(&db).await?;
    let projector = Projector::new(db.clone());
    projector.prepare().await?;
    projector.catch_up_all().await?;
    Ok(db)
}

/// Runs a report subcommand.
pub async fn report(
    storage: StorageArgs,
    command: ReportCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let ReportCommand::Usage {
        from,
        to,
        group_by,
        format,
    } = command;
    let query = UsageQuery::parse(from.as_deref(), to.as_deref(), group_by.as_deref())
        .map_err(|e| reports::describe(&e))?;
    let db = open(&storage).await?;
    let report = reports::usage(&db, &query)
        .await
        .map_err(|e| reports::describe(&e))?;
    match format {
        Format::Table => print!("{}", report.to_table()),
        Format::Csv => print!("{}", report.to_csv()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

/// Runs an audit subcommand.
pub async fn audit(
    storage: StorageArgs,
    command: AuditCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let AuditCommand::Account { id, format } = command;
    let db = open(&storage).await?;
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
