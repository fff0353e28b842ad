//! `threadline report usage …` (the admin usage report) and `threadline report reprice …`
//! (the same usage priced again), printed. The projections are brought up to date with the
//! log first.

use super::{Format, ReportCommand, StorageArgs};
use crate::projector::Projector;
use crate::reports::{self, UsageQuery};
use crate::reprice;
use crate::store::keys::KeyRing;

/// The database with its projections caught up with the log.
pub(super) async fn open(
    storage: &StorageArgs,
) -> Result<(threadline_projections::Db, KeyRing), Box<dyn std::error::Error>> {
    let (db, keys) = storage.open().await?;
    let projector = Projector::new(db.clone(), keys.clone());
    projector.prepare().await?;
    projector.catch_up_all().await?;
    Ok((db, keys))
}

/// Runs a report subcommand.
pub async fn run(
    storage: StorageArgs,
    command: ReportCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        ReportCommand::Usage {
            from,
            to,
            group_by,
            format,
        } => {
            let query = UsageQuery::parse(from.as_deref(), to.as_deref(), group_by.as_deref())
                .map_err(|e| reports::describe(&e))?;
            let spinner = super::progress::spinner("catching up with the log and summing usage");
            let (db, _) = open(&storage).await?;
            let report = reports::usage(&db, &query)
                .await
                .map_err(|e| reports::describe(&e))?;
            spinner.finish_and_clear();
            match format {
                Format::Table => print!("{}", report.to_table()),
                Format::Csv => print!("{}", report.to_csv()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
        ReportCommand::Reprice {
            from,
            to,
            prices,
            plans,
            group_by,
            format,
        } => {
            let query = UsageQuery::parse(from.as_deref(), to.as_deref(), group_by.as_deref())
                .map_err(|e| reports::describe(&e))?;
            let text = std::fs::read_to_string(&prices)
                .map_err(|e| format!("cannot read the prices file {}: {e}", prices.display()))?;
            let file = reprice::parse_prices(&text)?;
            let plans = crate::config::load_plans(plans.as_deref(), &storage.data_dir)?;
            let spinner = super::progress::spinner("catching up with the log and re-pricing");
            let (db, _) = open(&storage).await?;
            let catalog = threadline_projections::catalog::all(&db).await?;
            let report = reprice::reprice(&db, &query, &file, &catalog, &plans).await?;
            spinner.finish_and_clear();
            match format {
                Format::Table => print!("{}", report.to_table()),
                Format::Csv => print!("{}", report.to_csv()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
    }
    Ok(())
}
