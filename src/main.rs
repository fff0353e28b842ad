//! The `threadline` binary: parses the command line and runs the chosen command.

use clap::Parser;

/// mimalloc: a batch of the log is thousands of small JSON values made and dropped together,
/// which glibc's malloc serves several times slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The binary's last word goes to stderr.
#[allow(clippy::print_stderr)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    threadline::telemetry::init(std::io::stderr);
    match threadline::cli::run(threadline::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "threadline failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
