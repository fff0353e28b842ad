//! `threadline projections status|rebuild [NAME]|verify [NAME]`.

use super::{ProjectionsCommand, StorageArgs};
use crate::projector::verify::{self, VerifyReport};
use crate::projector::{Projector, rebuild};
use crate::store::log;

/// Runs a projections subcommand.
pub async fn run(
    storage: StorageArgs,
    command: ProjectionsCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let (db, keys) = storage.open().await?;
    let projector = Projector::new(db.clone(), keys.clone());
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
        ProjectionsCommand::Verify { name } => {
            let total = log::count(&db).await?.max(1) as u64;
            let mut differing = Vec::new();
            for name in names(&projector, name) {
                let bar = super::progress::bar(total, &name);
                let report = verify::verify(&projector, &name, &|done| {
                    bar.set_position(done.min(total));
                })
                .await;
                bar.finish_and_clear();
                let report = report?;
                print_verified(&report);
                if !report.is_identical() {
                    differing.push((name, report.differences()));
                }
            }
            if !differing.is_empty() {
                let total = differing.iter().map(|(_, n)| n).sum();
                let each: Vec<String> = differing
                    .iter()
                    .map(|(name, n)| format!("{name}: {n}"))
                    .collect();
                return Err(format!(
                    "projections verify: {} between the live tables and the log ({})",
                    plural(total, "difference"),
                    each.join(", ")
                )
                .into());
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let total = log::count(&db).await?.max(1) as u64;
            let names = names(&projector, name);
            let label = match names.as_slice() {
                [one] => one.clone(),
                _ => "every projection".to_owned(),
            };
            let bar = super::progress::bar(total, &label);
            let reports = rebuild::rebuild_all(&projector, &names, &|done| {
                bar.set_position(done.min(total));
            })
            .await?;
            bar.finish_and_clear();
            for report in reports {
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

/// The projection `name`, or every projection.
fn names(projector: &Projector, name: Option<String>) -> Vec<String> {
    match name {
        Some(n) => vec![n],
        None => projector
            .projections()
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
    }
}

/// `<name>: identical (N events)`, or the count and then each difference shown, by table.
fn print_verified(report: &VerifyReport) {
    let events = report.events;
    if report.is_identical() {
        println!("{}: identical ({events} events)", report.name);
        return;
    }
    println!(
        "{}: {} ({events} events, at {})",
        report.name,
        plural(report.differences(), "difference"),
        log::cursor_id(report.at)
    );
    for table in &report.tables {
        for difference in &table.shown {
            println!("  {}: {difference}", table.table);
        }
        let hidden = table.total - table.shown.len() as u64;
        if hidden > 0 {
            println!("  {}: … and {hidden} more", table.table);
        }
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
