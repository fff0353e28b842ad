//! `threadline serve`.

use super::{ServeArgs, StorageArgs};
use crate::config::Settings;
use crate::startup::Application;

/// Builds the settings from the command line / environment and serves until stopped.
pub async fn run(storage: StorageArgs, args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let plans = crate::config::load_plans(args.plans_file.as_deref(), &storage.data_dir)?;
    let settings = Settings {
        bind: args.bind,
        data_dir: storage.data_dir,
        database_url: storage.database_url.map(Into::into),
        master_key: storage.master_key.map(Into::into),
        admin_emails: args
            .admin_emails
            .into_iter()
            .filter(|e| !e.trim().is_empty())
            .collect(),
        limits: crate::auth::limits::LimitSettings {
            anonymous_per_minute: args.anon_per_minute,
            registrations_per_hour: args.registrations_per_hour,
            login_failures_per_account: args.login_failures_per_account,
            login_failures_per_ip: args.login_failures_per_ip,
        },
        trusted_proxies: crate::config::parse_proxies(&args.trusted_proxies)?,
        password_hashers: args.password_hashers,
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs.max(1)),
        session_idle: std::time::Duration::from_secs(
            args.session_idle_days.saturating_mul(24 * 3600),
        ),
        workers: args.workers,
        echo_delay: std::time::Duration::from_millis(args.echo_delay_ms),
        provider_env: None,
        replay_clock: Default::default(),
        web: crate::config::WebSettings {
            enabled: args.web_app,
            dir: args.web_dir,
        },
        allow_direct_models: args.allow_direct_models,
        cors_origins: args
            .cors_origins
            .into_iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect(),
        plans: std::sync::Arc::new(plans),
        billing: crate::config::BillingSettings {
            polar_webhook_secret: args.billing.polar_webhook_secret.map(Into::into),
            stripe_webhook_secret: args.billing.stripe_webhook_secret.map(Into::into),
            polar_access_token: args.billing.polar_access_token.map(Into::into),
            polar_base_url: args.billing.polar_base_url,
            stripe_secret_key: args.billing.stripe_secret_key.map(Into::into),
            stripe_base_url: args.billing.stripe_base_url,
        },
        jwt: crate::identity::JwtConfig {
            jwks_url: args.jwt.jwt_jwks_url,
            hs256_secret: args.jwt.jwt_secret.map(Into::into),
            issuer: args.jwt.jwt_issuer,
            audience: args.jwt.jwt_audience,
            anonymous_claim: args.jwt.jwt_anonymous_claim,
            admin_claim: args.jwt.jwt_admin_claim,
        },
        fetch_allow_hosts: args
            .fetch_allow_hosts
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        tools: crate::config::ToolSettings {
            exa_api_key: args
                .exa_api_key
                .filter(|k| !k.trim().is_empty())
                .map(Into::into),
            exa_base_url: args.exa_base_url,
            max_steps: args.tool_steps.max(1),
        },
        file_storage: args.s3.storage(),
    };
    tracing::debug!(?settings, "starting");
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
