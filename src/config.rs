//! Settings of a running server, read from the environment or mirrored flags (every variable is
//! in docs/configuration.md).

use secrecy::SecretString;
use std::path::PathBuf;

/// Everything `Application::build` needs. Secrets are [`SecretString`]s, so `Debug` shows
/// none of them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `THREADLINE_BIND`: address to listen on; port 0 picks a free port (logged at start).
    pub bind: String,
    /// `THREADLINE_DATA_DIR`: SQLite database, attachments, plan file.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `postgres://…` for PostgreSQL, `sqlite://…` for an explicit SQLite file;
    /// unset means `<data_dir>/threadline.db`.
    pub database_url: Option<SecretString>,
    /// `THREADLINE_MASTER_KEY`: wraps every account's data key (32 bytes, base64); unset means
    /// `<data_dir>/master.key`, made on first use. Every node of one database needs the same.
    pub master_key: Option<SecretString>,
    /// `THREADLINE_ADMIN_EMAILS`: emails with the admin role.
    pub admin_emails: Vec<String>,
    /// Abuse limits per client IP and per account: anonymous sign-ups
    /// (`THREADLINE_ANON_PER_MINUTE`), registrations (`THREADLINE_REGISTRATIONS_PER_HOUR`),
    /// failed logins (`THREADLINE_LOGIN_FAILURES_PER_ACCOUNT`, `THREADLINE_LOGIN_FAILURES_PER_IP`).
    pub limits: LimitSettings,
    /// `THREADLINE_TRUSTED_PROXIES`: addresses (or CIDR ranges) of reverse proxies whose
    /// `X-Forwarded-For` names the client; empty means the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `THREADLINE_PASSWORD_HASHERS`: password checks that may run at once (0 = one per core).
    pub password_hashers: usize,
    /// `THREADLINE_BODY_TIMEOUT_SECS`: time a request's body has to arrive.
    pub body_timeout: std::time::Duration,
    /// `THREADLINE_SESSION_IDLE_DAYS`: a session unused for this long stops working (zero:
    /// never).
    pub session_idle: std::time::Duration,
    /// `THREADLINE_WORKERS`: HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// `THREADLINE_ECHO_DELAY_MS`: pause between the words of the built-in `echo` model.
    pub echo_delay: std::time::Duration,
    /// `THREADLINE_CORS_ORIGINS`: browser origins allowed to call the API (`*` for any);
    /// empty means no CORS headers (same-origin frontends and servers need none).
    pub cors_origins: Vec<String>,
    /// `THREADLINE_ALLOW_DIRECT_MODELS`: accept `provider/upstream-model` names outside the
    /// catalog (development and tests; no access rules or prices apply to them).
    pub allow_direct_models: bool,
    /// Provider variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, …) to use instead of the
    /// process environment (tests point providers at a mock upstream this way).
    pub provider_env: Option<Vec<(String, SecretString)>>,
    /// The clock paced replays (`?speed=`) wait on: the real one, or a virtual one a test
    /// controls.
    pub replay_clock: crate::clock::Clock,
    /// `THREADLINE_PLANS_FILE` (default `<data_dir>/plans.yaml` when it exists): tiers' meters,
    /// limits and windows laid over the built-in defaults.
    pub plans: std::sync::Arc<threadline_domain::plans::Plans>,
    /// Billing providers: webhook secrets and API credentials.
    pub billing: BillingSettings,
    /// External identity: JWTs from a JWKS URL or an HS256 secret (off when neither is set).
    pub jwt: crate::identity::JwtConfig,
    /// Where attachments' bytes live: `<data_dir>/files`, or the bucket `THREADLINE_S3_BUCKET`.
    pub file_storage: crate::files::StorageSettings,
    /// `THREADLINE_FETCH_ALLOW_HOSTS`: hosts (`name` or `address`, optionally `:port`) the web
    /// fetcher may reach although their addresses are private (an intranet, tests).
    pub fetch_allow_hosts: Vec<String>,
    /// The model's tools: the search API and the reply's step limit.
    pub tools: ToolSettings,
    /// The web app at `/`: on or off, and where its files come from.
    pub web: WebSettings,
}

/// What the tools need: `EXA_API_KEY` (web search and research are offered only with it),
/// `EXA_BASE_URL`, and `THREADLINE_TOOL_STEPS`, the most model calls one reply makes.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    pub exa_api_key: Option<SecretString>,
    pub exa_base_url: String,
    pub max_steps: u32,
}

impl Default for ToolSettings {
    fn default() -> Self {
        ToolSettings {
            exa_api_key: None,
            exa_base_url: DEFAULT_EXA_BASE_URL.to_owned(),
            max_steps: DEFAULT_TOOL_STEPS,
        }
    }
}

/// Exa's API root (`EXA_BASE_URL` points elsewhere, e.g. at the mock upstream).
pub const DEFAULT_EXA_BASE_URL: &str = "https://api.exa.ai";

/// Model calls one reply may make (each step after the first answers tool results).
pub const DEFAULT_TOOL_STEPS: u32 = 5;

/// Abuse limits per node; each 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// `THREADLINE_ANON_PER_MINUTE`.
    pub anonymous_per_minute: u32,
    /// `THREADLINE_REGISTRATIONS_PER_HOUR`.
    pub registrations_per_hour: u32,
    /// `THREADLINE_LOGIN_FAILURES_PER_ACCOUNT` (per 15 minutes).
    pub login_failures_per_account: u32,
    /// `THREADLINE_LOGIN_FAILURES_PER_IP` (per 15 minutes).
    pub login_failures_per_ip: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            anonymous_per_minute: 20,
            registrations_per_hour: 10,
            login_failures_per_account: 10,
            login_failures_per_ip: 50,
        }
    }
}

impl LimitSettings {
    /// No limits at all (tests that sign up many accounts from one address).
    pub fn unlimited() -> Self {
        Self {
            anonymous_per_minute: 0,
            registrations_per_hour: 0,
            login_failures_per_account: 0,
            login_failures_per_ip: 0,
        }
    }
}

/// `POLAR_*` and `STRIPE_*` settings; the secrets are [`SecretString`]s.
#[derive(Debug, Clone, Default)]
pub struct BillingSettings {
    /// `POLAR_WEBHOOK_SECRET` (`whsec_…` or Polar's raw secret): enables `/v1/webhooks/polar`.
    pub polar_webhook_secret: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`): enables `/v1/webhooks/stripe`.
    pub stripe_webhook_secret: Option<SecretString>,
    /// `POLAR_ACCESS_TOKEN`: checkout and portal links through Polar.
    pub polar_access_token: Option<SecretString>,
    /// `POLAR_BASE_URL` (default `https://api.polar.sh`).
    pub polar_base_url: String,
    /// `STRIPE_SECRET_KEY`: checkout and portal links through Stripe.
    pub stripe_secret_key: Option<SecretString>,
    /// `STRIPE_BASE_URL` (default `https://api.stripe.com`).
    pub stripe_base_url: String,
}

impl Settings {
    /// Defaults for a server on `bind` with data in `data_dir` (what tests start from).
    pub fn new(bind: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: bind.into(),
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
            admin_emails: Vec::new(),
            limits: Default::default(),
            trusted_proxies: Vec::new(),
            password_hashers: 0,
            body_timeout: std::time::Duration::from_secs(15),
            session_idle: std::time::Duration::from_secs(30 * 24 * 3600),
            workers: 0,
            echo_delay: std::time::Duration::from_millis(20),
            provider_env: None,
            replay_clock: Default::default(),
            allow_direct_models: false,
            cors_origins: Vec::new(),
            plans: Default::default(),
            billing: BillingSettings {
                polar_base_url: crate::billing::client::POLAR_BASE_URL.into(),
                stripe_base_url: crate::billing::client::STRIPE_BASE_URL.into(),
                ..Default::default()
            },
            jwt: Default::default(),
            file_storage: Default::default(),
            fetch_allow_hosts: Vec::new(),
            tools: Default::default(),
            web: Default::default(),
        }
    }

    /// Whether `email` has the admin role.
    pub fn is_admin(&self, email: Option<&str>) -> bool {
        email.is_some_and(|e| {
            self.admin_emails
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(e))
        })
    }
}

/// Parses `THREADLINE_TRUSTED_PROXIES`: IP addresses or CIDR ranges.
pub fn parse_proxies(items: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("THREADLINE_TRUSTED_PROXIES: {s:?} is not an IP address or CIDR range")
                })
        })
        .collect()
}

/// Reads the plans file: `explicit` when given (it must exist), else `<data_dir>/plans.yaml`
/// when present, else the defaults.
pub fn load_plans(
    explicit: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> Result<threadline_domain::plans::Plans, String> {
    let default_path = data_dir.join("plans.yaml");
    let path = match explicit {
        Some(path) => path.to_owned(),
        None if default_path.exists() => default_path,
        None => return Ok(Default::default()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the plans file {}: {e}", path.display()))?;
    threadline_domain::plans::Plans::with_overrides(serde_yaml_ng::Deserializer::from_str(&text))
        .map_err(|e| format!("the plans file {} is invalid: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_password() {
        let mut s = Settings::new("127.0.0.1:0", "/tmp/x");
        s.database_url = Some("postgres://app:hunter2@db:5432/threadline".into());
        s.billing.stripe_secret_key = Some("sk_live_secret".into());
        s.provider_env = Some(vec![("OPENAI_API_KEY".into(), "sk-secret".into())]);
        let shown = format!("{s:?}");
        for secret in ["hunter2", "sk_live_secret", "sk-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn admin_emails_match_case_insensitively() {
        let mut s = Settings::new("x", "y");
        s.admin_emails = vec!["Boss@Example.com".into()];
        assert!(s.is_admin(Some("boss@example.com")));
        assert!(!s.is_admin(Some("other@example.com")));
        assert!(!s.is_admin(None));
    }
}

/// The web app the server ships.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `THREADLINE_WEB_APP`: serve the web app at `/` (off: an API-only server).
    pub enabled: bool,
    /// `THREADLINE_WEB_DIR`: serve the app's files from this directory (its `index.html` and
    /// `assets/`) instead of the copy built into the binary, so edits show without a rebuild.
    pub dir: Option<PathBuf>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
        }
    }
}
