//! The `threadline` binary: parses the command line and runs the chosen command.

use clap::Parser;
use threadline::cli::{Cli, Command, ServeArgs};
use threadline::commands;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    threadline::telemetry::init(std::io::stderr);
    let cli = Cli::parse();
    let storage = cli.storage;
    let result = match cli.command {
        None => commands::serve::run(storage, ServeArgs::from_env()).await,
        Some(Command::Serve(args)) => commands::serve::run(storage, *args).await,
        Some(Command::Migrate) => commands::migrate::run(storage).await,
        Some(Command::MockUpstream { bind }) => threadline::mock_upstream::run(&bind)
            .await
            .map_err(Into::into),
        Some(Command::Projections { command }) => {
            commands::projections::run(storage, command).await
        }
        Some(Command::Report { command }) => commands::reports::report(storage, command).await,
        Some(Command::Audit { command }) => commands::reports::audit(storage, command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "threadline failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
