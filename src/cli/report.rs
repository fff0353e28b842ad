//! `threadline report usage …`: the admin usage report, printed. The projections are brought
//! up to date with the log first.

use super::{Format, ReportCommand, StorageArgs};
use crate::projector::Projector;
use crate::reports::{self, UsageQuery};
use crate::store;

/// The database with its projections caught up with the log.
pub(super) async fn open(
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
pub async fn run(
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
    let spinner = super::progress::spinner("catching up with the log and summing usage");
    let db = open(&storage).await?;
    let report = reports::usage(&db, &query)
        .await
        .map_err(|e| reports::describe(&e))?;
    spinner.finish_and_clear();
    match format {
        Format::Table => print!("{}", report.to_table()),
        Format::Csv => print!("{}", report.to_csv()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
