//! The command line: the clap structs here, and each subcommand's code in its own file.
//!
//! # Layout
//! - [`serve`], [`migrate`], [`projections`], [`report`], [`audit`], [`events`], [`replay`],
//!   [`verify_log`]: one file per command.
//! - [`run`] (here): dispatches a parsed command line.

// The command line writes its results to stdout and its errors to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod accounts;
pub mod audit;
pub mod events;
pub mod migrate;
pub mod progress;
pub mod projections;
pub mod replay;
pub mod report;
pub mod serve;
pub mod verify_log;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Threadline: an event-sourced backend for AI chat applications.
#[derive(Debug, Parser)]
#[command(name = "threadline", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the data lives (shared by every command).
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, attachments and the plan file.
    #[arg(
        long,
        env = "THREADLINE_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL; `sqlite://…` an explicit SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// The key (32 bytes, base64) that wraps every account's data key; every node and command
    /// on one database needs the same. Unset: `<data dir>/master.key`, made on first use.
    #[arg(
        long,
        env = "THREADLINE_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<String>,
}

impl StorageArgs {
    /// Connects, migrates and loads the master key: what every command on the data needs.
    pub async fn open(
        &self,
    ) -> Result<(threadline_projections::Db, crate::store::keys::KeyRing), Box<dyn std::error::Error>>
    {
        let db = crate::store::connect(self.database_url.as_deref(), &self.data_dir).await?;
        crate::store::migrate(&db).await?;
        let keys = crate::store::keys::KeyRing::load(
            db.clone(),
            self.master_key.as_deref(),
            &self.data_dir,
        )?;
        Ok((db, keys))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Run a mock upstream that speaks the OpenAI, Anthropic and Gemini stream formats (for
    /// tests and benchmarks; knobs in the model name, see src/mock_upstream.rs).
    MockUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: String,
    },
    /// Inspect or rebuild projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Reports from the projections (the same as `GET /v1/admin/usage`).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Audits answered from the log: ledger statements, threads as they were.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Replays from the log at the pace they were recorded.
    Replay {
        #[command(subcommand)]
        command: ReplayCommand,
    },
    /// The log itself, one event per line (NDJSON).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Recompute the log's hash chain and compare it with the seals; print the head hash.
    /// Exit status 1 when an event does not match.
    VerifyLog,
    /// Operators' actions on accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Erase an account (and the anonymous accounts linked into it): its data key is deleted,
    /// so its personal data in the log reads as redacted; its files are deleted; every
    /// projection is rebuilt. Ledger and usage totals stay. Cannot be undone.
    Erase {
        /// The account id.
        id: String,
        #[command(flatten)]
        s3: S3Args,
    },
}

/// Which events `events tail` and `events export` write.
#[derive(Debug, Clone, Args)]
pub struct EventFilter {
    /// Only events of this type (e.g. `MessagePosted`); repeat for several.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events of this account (its own streams and the streams that name it).
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The newest events, or every event after `--from`; `--follow` keeps writing new ones.
    Tail {
        /// Start after this log position (`POSITION`, or `TX.POSITION` on PostgreSQL); default:
        /// the last 10 events.
        #[arg(long)]
        from: Option<String>,
        /// Keep waiting for new events (until interrupted).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        filter: EventFilter,
    },
    /// Every event from `--from` to `--to` (log positions, inclusive), in log order.
    Export {
        /// First position (`POSITION` or `TX.POSITION`; default: the start of the log).
        #[arg(long)]
        from: Option<String>,
        /// Last position (default: the head of the log when the export starts).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        filter: EventFilter,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// A reply's UI message stream (SSE frames, as `GET /v1/generations/{id}/events` sends
    /// them) on stdout, each event after the gap recorded before it, scaled by `--speed`.
    Generation {
        /// The generation id.
        id: String,
        /// `1x` (as recorded), `2x`, `0.5x`, … or `max` (no waits).
        #[arg(long, default_value = "1x")]
        speed: String,
    },
}

/// Output formats of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Messages, tokens by kind, credits and cost, grouped by day, model, provider, tier and
    /// account.
    Usage {
        /// First UTC day (`YYYY-MM-DD`; default 29 days before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// Last UTC day (`YYYY-MM-DD`; default today).
        #[arg(long)]
        to: Option<String>,
        /// Comma-separated: day, model, provider, tier, account.
        #[arg(long)]
        group_by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// What the replies of a period would have cost under other prices (and plans), grouped
    /// like `usage`, from the usage recorded in the log; changes nothing.
    Reprice {
        /// First UTC day (`YYYY-MM-DD`; default 29 days before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// Last UTC day (`YYYY-MM-DD`; default today).
        #[arg(long)]
        to: Option<String>,
        /// YAML or JSON: model id → `{credits, prices: {input, output, cached_input,
        /// reasoning}}` (micro-dollars per million tokens); what it leaves out is today's.
        #[arg(long)]
        prices: PathBuf,
        /// A plans file to apply instead of the server's (which tiers pay credits).
        #[arg(long)]
        plans: Option<PathBuf>,
        /// Comma-separated: day, model, provider, tier, account.
        #[arg(long)]
        group_by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// An account's ledger statement: every credit movement with running balances.
    Account {
        /// The account id.
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A thread exactly as it was at a moment (its messages, branches, titles and state),
    /// from the log.
    Thread {
        /// The thread id.
        id: String,
        /// An RFC 3339 time, or a log position (`POSITION`, or `TX.POSITION` on PostgreSQL);
        /// default: now.
        #[arg(long)]
        at: Option<String>,
        /// `table` (readable text) or `json` (the same as `GET /v1/admin/threads/{id}?at=`).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "THREADLINE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Comma-separated emails with the admin role.
    #[arg(
        long,
        env = "THREADLINE_ADMIN_EMAILS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub admin_emails: Vec<String>,
    /// Anonymous accounts one client IP may create per minute (0 = unlimited).
    #[arg(long, env = "THREADLINE_ANON_PER_MINUTE", default_value_t = 20)]
    pub anon_per_minute: u32,
    /// Registrations one client IP may make per hour (0 = unlimited).
    #[arg(long, env = "THREADLINE_REGISTRATIONS_PER_HOUR", default_value_t = 10)]
    pub registrations_per_hour: u32,
    /// Failed logins per account in 15 minutes before its logins are refused (0 = unlimited).
    #[arg(
        long,
        env = "THREADLINE_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub login_failures_per_account: u32,
    /// Failed logins per client IP in 15 minutes before its logins are refused (0 = unlimited).
    #[arg(long, env = "THREADLINE_LOGIN_FAILURES_PER_IP", default_value_t = 50)]
    pub login_failures_per_ip: u32,
    /// Comma-separated reverse proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is trusted.
    #[arg(
        long,
        env = "THREADLINE_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,
    /// Password checks that may run at once (0 = one per core).
    #[arg(long, env = "THREADLINE_PASSWORD_HASHERS", default_value_t = 0)]
    pub password_hashers: usize,
    /// Seconds a request's body has to arrive.
    #[arg(long, env = "THREADLINE_BODY_TIMEOUT_SECS", default_value_t = 15)]
    pub body_timeout_secs: u64,
    /// Days a session may stay unused before it stops working (0 = never).
    #[arg(long, env = "THREADLINE_SESSION_IDLE_DAYS", default_value_t = 30)]
    pub session_idle_days: u64,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "THREADLINE_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Serve the web app at `/` (`false`: only the API).
    #[arg(long, env = "THREADLINE_WEB_APP", default_value_t = true, action = clap::ArgAction::Set)]
    pub web_app: bool,
    /// Serve the web app's files from this directory instead of the built-in copy.
    #[arg(long, env = "THREADLINE_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,
    /// Milliseconds between the words of the built-in `echo` model.
    #[arg(long, env = "THREADLINE_ECHO_DELAY_MS", default_value_t = 20)]
    pub echo_delay_ms: u64,
    /// Comma-separated browser origins allowed to call the API (`*` for any; empty: no CORS).
    #[arg(
        long,
        env = "THREADLINE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,
    /// Accept `provider/upstream-model` names outside the catalog (development, tests).
    #[arg(long, env = "THREADLINE_ALLOW_DIRECT_MODELS", default_value_t = false)]
    pub allow_direct_models: bool,
    /// YAML file of plans (tiers' meters, limits, windows); default `<data-dir>/plans.yaml`
    /// when it exists.
    #[arg(long, env = "THREADLINE_PLANS_FILE")]
    pub plans_file: Option<PathBuf>,
    #[command(flatten)]
    pub billing: BillingArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub s3: S3Args,
    /// Comma-separated hosts (`name` or `address`, optionally `:port`) that attachments by URL
    /// may be fetched from although their addresses are private.
    #[arg(long, env = "THREADLINE_FETCH_ALLOW_HOSTS", value_delimiter = ',')]
    pub fetch_allow_hosts: Vec<String>,
    /// Exa API key: enables the `web_search` and `research` tools.
    #[arg(long, env = "EXA_API_KEY", hide_env_values = true)]
    pub exa_api_key: Option<String>,
    /// Exa's API root.
    #[arg(long, env = "EXA_BASE_URL", default_value = crate::config::DEFAULT_EXA_BASE_URL)]
    pub exa_base_url: String,
    /// Most model calls one reply may make when the model calls tools.
    #[arg(long, env = "THREADLINE_TOOL_STEPS", default_value_t = crate::config::DEFAULT_TOOL_STEPS)]
    pub tool_steps: u32,
}

impl S3Args {
    /// Where attachments are: the bucket named, or else `<data dir>/files`.
    pub fn storage(self) -> crate::files::StorageSettings {
        match self.s3_bucket {
            None => crate::files::StorageSettings::Local,
            Some(bucket) => crate::files::StorageSettings::S3(crate::files::store::S3Settings {
                bucket,
                region: self.s3_region,
                endpoint: self.s3_endpoint,
                prefix: self.s3_prefix,
                access_key_id: self.s3_access_key_id,
                secret_access_key: self.s3_secret_access_key.map(Into::into),
            }),
        }
    }
}

/// Attachments in an S3-compatible bucket instead of the data directory.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// Bucket for attachments (unset: `<data dir>/files`).
    #[arg(long, env = "THREADLINE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "THREADLINE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Another S3-compatible service's URL (MinIO, R2, a local server): path-style requests.
    #[arg(long, env = "THREADLINE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "THREADLINE_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Access key id (unset: `AWS_ACCESS_KEY_ID` and the usual AWS sources).
    #[arg(long, env = "THREADLINE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (unset: `AWS_SECRET_ACCESS_KEY`).
    #[arg(long, env = "THREADLINE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

/// Billing providers: Polar and Stripe.
#[derive(Debug, Clone, Args)]
pub struct BillingArgs {
    /// Polar's webhook secret; enables `POST /v1/webhooks/polar`.
    #[arg(long, env = "POLAR_WEBHOOK_SECRET", hide_env_values = true)]
    pub polar_webhook_secret: Option<String>,
    /// Stripe's webhook signing secret; enables `POST /v1/webhooks/stripe`.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Polar organization access token (checkout and portal links).
    #[arg(long, env = "POLAR_ACCESS_TOKEN", hide_env_values = true)]
    pub polar_access_token: Option<String>,
    #[arg(long, env = "POLAR_BASE_URL", default_value = crate::billing::client::POLAR_BASE_URL)]
    pub polar_base_url: String,
    /// Stripe secret key (checkout and portal links).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    #[arg(long, env = "STRIPE_BASE_URL", default_value = crate::billing::client::STRIPE_BASE_URL)]
    pub stripe_base_url: String,
}

/// External identity through JWTs (Better Auth, Clerk, Auth0).
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// JWKS URL of the identity provider (Better Auth, Clerk, Auth0).
    #[arg(long, env = "THREADLINE_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// Shared HS256 secret.
    #[arg(long, env = "THREADLINE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Required `iss`.
    #[arg(long, env = "THREADLINE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    #[arg(long, env = "THREADLINE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The claim that marks anonymous users.
    #[arg(long, env = "THREADLINE_JWT_ANONYMOUS_CLAIM", default_value = crate::identity::DEFAULT_ANONYMOUS_CLAIM)]
    pub jwt_anonymous_claim: String,
    /// A claim whose value `admin` grants the admin role (e.g. `role`).
    #[arg(long, env = "THREADLINE_JWT_ADMIN_CLAIM")]
    pub jwt_admin_claim: Option<String>,
}

/// Runs the command `cli` names (serving when it names none).
pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let storage = cli.storage;
    match cli.command {
        None => serve::run(storage, ServeArgs::from_env()).await,
        Some(Command::Serve(args)) => serve::run(storage, *args).await,
        Some(Command::Migrate) => migrate::run(storage).await,
        Some(Command::MockUpstream { bind }) => {
            crate::mock_upstream::run(&bind).await.map_err(Into::into)
        }
        Some(Command::Projections { command }) => projections::run(storage, command).await,
        Some(Command::Report { command }) => report::run(storage, command).await,
        Some(Command::Audit { command }) => audit::run(storage, command).await,
        Some(Command::Events { command }) => events::run(storage, command).await,
        Some(Command::Replay { command }) => replay::run(storage, command).await,
        Some(Command::VerifyLog) => verify_log::run(storage).await,
        Some(Command::Accounts { command }) => accounts::run(storage, command).await,
    }
}

#[derive(Debug, Parser)]
struct ServeOnly {
    #[command(flatten)]
    args: ServeArgs,
}

impl ServeArgs {
    /// The serve arguments from the environment alone (for `threadline` without a command).
    pub fn from_env() -> Self {
        ServeOnly::parse_from(["threadline"]).args
    }
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Show each projection's checkpoint and how far it is behind the log.
    Status,
    /// Rebuild projections from position 0 into fresh tables and swap them in (the live server
    /// keeps answering meanwhile). Without NAME, every projection.
    Rebuild {
        /// The projection to rebuild.
        name: Option<String>,
    },
    /// Rebuild projections into shadow tables and compare them with the live tables row by
    /// row; print each difference, or "identical". Exit status 1 on any difference. Safe while
    /// the server serves. Without NAME, every projection.
    Verify {
        /// The projection to verify.
        name: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
