//! One way in: [`Application::build`] opens the database, runs migrations, prepares and starts
//! the projector, and binds the HTTP listener. `main` and every integration test boot the app
//! the same way.

use std::net::TcpListener;

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use threadline_projections::Db;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chat::{ChatService, Signals};
use crate::config::Settings;
use crate::projector::Projector;
use crate::providers::registry::ProviderRegistry;
use crate::state::AppState;
use crate::store::{self, StoreError, bus::CommandBus, keys::KeyRing};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projector set-up failed: {0}")]
    Projector(#[from] crate::projector::ProjectorError),
    #[error("cannot seed the model catalog: {0}")]
    Seed(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    /// Opens storage, migrates, prepares projections, starts the projector and binds.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        check_webhook_secrets(&settings)?;
        let database_url = settings
            .database_url
            .as_ref()
            .map(ExposeSecret::expose_secret);
        let db = store::connect(database_url, &settings.data_dir).await?;
        store::migrate(&db).await?;
        let keys = KeyRing::load(
            db.clone(),
            settings
                .master_key
                .as_ref()
                .map(ExposeSecret::expose_secret),
            &settings.data_dir,
        )
        .map_err(|e| StartupError::Config(e.to_string()))?;
        let projector = Projector::new(db.clone(), keys.clone());
        projector.prepare().await?;

        let bus = CommandBus::new(db.clone(), keys.clone());
        let signals = Signals::default();
        let chat = ChatService::new(
            db.clone(),
            bus.clone(),
            projector.clone(),
            match &settings.provider_env {
                Some(vars) => ProviderRegistry::from_lookup(
                    settings.echo_delay,
                    |name| {
                        vars.iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.expose_secret().to_owned())
                    },
                    None,
                ),
                None => ProviderRegistry::from_env(settings.echo_delay),
            },
            signals.clone(),
        );
        chat.set_tool_steps(settings.tools.max_steps);
        // Replies left running by a previous process (or a dead node) end as interrupted,
        // once the projections have caught up with them.
        projector.catch_up_all().await?;
        seed_catalog(&db, &bus).await?;
        projector.catch_up_all().await?;
        chat.heartbeat().await.map_err(StoreError::from)?;
        match chat.recover_orphans().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(replies = n, "marked replies of a dead process interrupted"),
            Err(e) => tracing::warn!(error = %e, "orphan recovery failed"),
        }

        let feed = crate::feed::FeedHub::new(db.clone(), keys.clone());
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(
                feed.clone()
                    .run(projector.clone(), signals.clone(), stop_rx.clone()),
            ),
            tokio::spawn(feed.clone().listen(stop_rx.clone())),
            tokio::spawn(projector.clone().run(stop_rx.clone())),
            tokio::spawn(crate::chat::listen(
                db.clone(),
                projector.clone(),
                chat.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(chat.clone().run_maintenance(stop_rx.clone())),
            tokio::spawn(crate::store::seal::run(db.clone(), stop_rx.clone())),
        ];
        let mut tasks = tasks;

        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind.clone(),
                source,
            })?
            .port();
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| StartupError::Http(e.to_string()))?;
        let search = crate::tools::search::from_settings(&settings.tools, &http);
        let state = web::Data::new(AppState {
            db: db.clone(),
            bus,
            projector,
            chat,
            feed,
            limits: crate::auth::limits::Limits::new(settings.limits),
            passwords: crate::auth::passwords::Passwords::new(
                match settings.password_hashers {
                    0 => std::thread::available_parallelism().map_or(2, usize::from),
                    n => n,
                },
                crate::auth::passwords::QUEUE_WAIT,
            ),
            jwt: crate::identity::JwtVerifier::new(settings.jwt.clone(), http.clone()),
            http,
            links: Default::default(),
            files: crate::files::FileStore::open(&settings.file_storage, &settings.data_dir)
                .map_err(|e| StartupError::Config(e.to_string()))?,
            file_digests: Default::default(),
            fetcher: crate::tools::fetch::Fetcher::new(crate::tools::fetch::FetchPolicy {
                allow_hosts: settings.fetch_allow_hosts.clone(),
                ..Default::default()
            })
            .map_err(|e| StartupError::Config(format!("the web fetcher: {e}")))?,
            search,
            mcp: Arc::new(crate::tools::mcp::McpClients::new()),
            settings: Arc::new(settings.clone()),
        });
        tasks.push(tokio::spawn(crate::services::files::sweep_periodically(
            state.clone(),
            stop_rx,
        )));
        let cors_origins = settings.cors_origins.clone();
        let web_app = settings.web.enabled;
        let server = HttpServer::new(move || {
            use actix_web::middleware::from_fn;
            App::new()
                .app_data(state.clone())
                // Innermost first: a token is resolved before any extractor runs, under the
                // body's deadline; every error leaves as problem+json.
                .wrap(from_fn(crate::middleware::authenticate))
                .wrap(from_fn(crate::middleware::body_deadline))
                // Without configured origins no CORS middleware runs at all (it would refuse
                // requests that carry an `Origin` header, same-origin ones included).
                .wrap(actix_web::middleware::Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(from_fn(crate::middleware::log_request))
                .wrap(from_fn(crate::middleware::problems))
                // Outermost: the OpenAI-compatible route's problems in OpenAI's shape.
                .wrap(from_fn(crate::routes::openai::errors::rewrite))
                .configure(move |cfg| crate::routes::config(cfg, web_app))
                .default_service(web::to(crate::routes::not_found))
        })
        .workers(workers)
        .shutdown_timeout(30)
        // Streams are many small writes: without TCP_NODELAY, Nagle's algorithm and delayed
        // ACKs hold parts back ~40 ms.
        .on_connect(crate::mock_upstream::set_nodelay)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?
        .run();
        tracing::info!(
            port,
            database = db.backend_name(),
            "threadline listening on {}",
            settings
                .bind
                .rsplit_once(':')
                .map_or(settings.bind.clone(), |(host, _)| format!("{host}:{port}"))
        );
        Ok(Self {
            port,
            server,
            db,
            stop,
            tasks,
        })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The database the application uses.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or the handle), then stops the
    /// background tasks, seals what they wrote last and closes the pools.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // The tasks' own last writes (replies marked interrupted, sessions' last use) may
        // commit after the sealer's last pass: seal once more when nothing writes any more.
        match tokio::time::timeout(
            Duration::from_secs(10),
            crate::store::seal::seal_all(&self.db),
        )
        .await
        {
            Ok(Err(e)) => tracing::warn!(error = %e, "sealing the log at shutdown failed"),
            Err(_) => tracing::warn!("sealing the log at shutdown took too long"),
            Ok(Ok(_)) => {}
        }
        match &self.db {
            Db::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
        tracing::info!("threadline stopped");
        result
    }
}

/// Seeds the model catalog with the default catalog the first time a database is used
/// (from then on the catalog changes only through admins).
/// Refuses to start with a webhook secret that cannot key an HMAC (every delivery would fail).
fn check_webhook_secrets(settings: &Settings) -> Result<(), StartupError> {
    use crate::billing::signature::sign_standard_webhook;
    if let Some(secret) = &settings.billing.polar_webhook_secret {
        sign_standard_webhook(secret.expose_secret(), "probe", 0, b"")
            .map_err(|e| StartupError::Config(format!("POLAR_WEBHOOK_SECRET: {e}")))?;
    }
    if settings
        .billing
        .stripe_webhook_secret
        .as_ref()
        .is_some_and(|s| s.expose_secret().is_empty())
    {
        return Err(StartupError::Config(
            "STRIPE_WEBHOOK_SECRET is empty".into(),
        ));
    }
    Ok(())
}

async fn seed_catalog(db: &Db, bus: &CommandBus) -> Result<(), StartupError> {
    use threadline_domain::catalog::{CatalogCommand, CatalogModel, default_catalog};
    if !threadline_projections::catalog::all(db)
        .await
        .map_err(StoreError::from)?
        .is_empty()
    {
        return Ok(());
    }
    let meta = crate::store::bus::CommandMeta::system();
    for (id, spec) in default_catalog() {
        bus.execute::<CatalogModel>(
            id,
            CatalogCommand::Define {
                spec,
                at: chrono::Utc::now(),
            },
            &meta,
        )
        .await
        .map_err(|e| StartupError::Seed(e.to_string()))?;
    }
    tracing::info!("seeded the default model catalog");
    Ok(())
}

/// CORS for browser frontends on other origins: the configured origins (or any with `*`) may
/// call every route with a bearer token and read the streaming headers. With no origins
/// configured no CORS headers are sent.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::{Method, header};
    let mut cors = actix_cors::Cors::default();
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors.allowed_methods([
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::PUT,
        Method::DELETE,
    ])
    .allowed_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::HeaderName::from_static("last-event-id"),
        header::HeaderName::from_static("x-request-id"),
        header::HeaderName::from_static("x-mock"),
    ])
    .expose_headers([
        header::HeaderName::from_static("x-vercel-ai-ui-message-stream"),
        header::HeaderName::from_static("x-threadline-overhead-ms"),
        header::RETRY_AFTER,
        header::LOCATION,
    ])
    .max_age(600)
}
