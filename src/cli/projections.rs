//! `threadline projections status|rebuild [NAME]`.

use super::{ProjectionsCommand, StorageArgs};
use crate::projector::{Projector, rebuild};
use crate::store::{self, log};

/// Runs a projections subcommand.
pub async fn run(
    storage: StorageArgs,
    command: ProjectionsCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = store::connect(storage.database_url.as_deref(), &storage.data_dir).await?;
    store::migrate(&db).await?;
    let projector = Projector::new(db.clone());
    projector.prepare().await?;
    match command {
        ProjectionsCommand::Status => {
            let head = log::head(&db).await?;
            let total = log::count(&db).await?;
            println!("log: {total} events, head at position {}", head.1);
            println!(
                "{:<16} {:>8} {:>14} {:>10}",
                "projection", "version", "position", "behind"
            );
            for s in projector.status().await? {
                let behind = if (s.tx_id, s.position) >= head {
                    "0".to_owned()
                } else {
                    "yes".to_owned()
                };
                println!(
                    "{:<16} {:>8} {:>14} {:>10}",
                    s.name, s.version, s.position, behind
                );
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => projector
                    .projections()
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect(),
            };
            let total = log::count(&db).await?.max(1) as u64;
            for name in names {
                let bar = super::progress::bar(total, &name);
                let report = rebuild::rebuild(&projector, &name, &|done| {
                    bar.set_position(done.min(total));
                })
                .await?;
                bar.finish_and_clear();
                println!(
                    "rebuilt {} from {} events in {:.2}s ({:.0} events/s)",
                    report.name,
                    report.events,
                    report.seconds,
                    report.events as f64 / report.seconds.max(1e-9)
                );
            }
        }
    }
    Ok(())
}
