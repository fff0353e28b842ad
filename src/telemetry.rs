//! Structured logs with `tracing`: `RUST_LOG` filters (default `info`),
//! `THREADLINE_LOG_FORMAT=json` switches to JSON lines. Text logs are coloured only when
//! standard error is a terminal (and `NO_COLOR` is unset), so log files hold plain text.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing to `sink`. Safe to call more than once.
pub fn init<W>(sink: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(sink);
    let _ = if std::env::var("THREADLINE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The error and its sources, `: `-separated (reqwest's top-level text alone is vague).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
