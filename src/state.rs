//! What every handler shares: the database, the command bus, the projector, the settings.

use std::sync::Arc;
use std::time::Duration;

use threadline_projections::Db;

use crate::config::Settings;
use crate::error::ApiError;
use crate::projector::Projector;
use crate::store::bus::{CommandBus, CommandMeta, Routed};
use crate::store::log::Cursor;

/// How long a command's caller waits for the projections to show its write.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(3);

/// Application state behind `web::Data`.
pub struct AppState {
    pub db: Db,
    pub bus: CommandBus,
    pub projector: Projector,
    pub settings: Arc<Settings>,
    /// Abuse limits (sign-ups, registrations, failed logins), counted on this node.
    pub limits: crate::auth::limits::Limits,
    /// Password hashing with bounded concurrency.
    pub passwords: Arc<crate::auth::passwords::Passwords>,
    pub chat: Arc<crate::chat::ChatService>,
    pub feed: crate::feed::FeedHub,
    /// For billing providers' and identity providers' APIs.
    pub http: reqwest::Client,
    /// External JWTs, when configured.
    pub jwt: Option<crate::identity::JwtVerifier>,
    /// One lock per anonymous account being linked: sign-ins racing with one anonymous token
    /// take turns, and the losers are refused before they create anything.
    pub links: crate::keyed_lock::KeyedLocks<String>,
    /// Attachment bytes.
    pub files: crate::files::FileStore,
    /// One lock per content digest: storing bytes and recording (or deleting) the files that
    /// hold them take turns.
    pub file_digests: crate::keyed_lock::KeyedLocks<String>,
    /// Fetches web addresses for attachments (and the tools), refusing private addresses.
    pub fetcher: crate::tools::fetch::Fetcher,
    /// The web search API behind `web_search` and research (none without `EXA_API_KEY`).
    pub search: Option<std::sync::Arc<dyn crate::tools::search::SearchApi>>,
    /// Registered MCP servers' tool lists (cached on this node) and calls.
    pub mcp: Arc<crate::tools::mcp::McpClients>,
}

impl AppState {
    /// Executes a command and returns the log cursor it reached, without waiting for
    /// projections (call [`AppState::settle`] before answering).
    pub async fn send<A>(
        &self,
        id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<Option<Cursor>, ApiError>
    where
        A: Routed,
        A::Command: Clone,
        A::Error: Clone + Into<ApiError>,
    {
        let cursor = self.bus.execute::<A>(id, command, meta).await?;
        self.projector.wake();
        Ok(cursor)
    }

    /// Executes a command and waits until the projections show it (read-your-writes).
    pub async fn run<A>(
        &self,
        id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<(), ApiError>
    where
        A: Routed,
        A::Command: Clone,
        A::Error: Clone + Into<ApiError>,
    {
        let cursor = self.send::<A>(id, command, meta).await?;
        self.settle(cursor).await;
        Ok(())
    }

    /// Waits (bounded) until the projections show what this node's commands last wrote on
    /// behalf of `account`: every request but a send does, before its handler reads.
    pub async fn fresh_for_account(&self, account: &str) {
        self.settle(self.bus.written().by_account(account)).await;
    }

    /// Waits (bounded) until the projections show what any of this node's commands last
    /// wrote: reads across accounts (an admin's, a shared thread's) do.
    pub async fn fresh_for_everyone(&self) {
        self.settle(self.bus.written().newest()).await;
    }

    /// Waits (bounded) until the projections show what this node's commands last appended to
    /// the thread `id`: a send does, before it reads the thread's tree.
    pub async fn fresh_for_thread(&self, id: &str) {
        self.settle(self.bus.written().to_stream("Thread", id))
            .await;
    }

    /// Whether this node writes the database alone (SQLite), so that every read that should
    /// show a write reaches this node's [`Self::fresh_for_account`]. With several nodes
    /// (PostgreSQL) a write waits for the projections before it answers, so a read on any
    /// node shows it.
    pub fn sole_writer(&self) -> bool {
        matches!(self.db, Db::Sqlite { .. })
    }

    /// Waits (bounded) until every projection has applied the event at `cursor`, so that the
    /// caller's next read shows its write.
    pub async fn settle(&self, cursor: Option<Cursor>) {
        let Some(cursor) = cursor else { return };
        if !self
            .projector
            .wait_for(cursor, READ_YOUR_WRITES_TIMEOUT)
            .await
        {
            tracing::warn!(?cursor, "projections did not reach the write in time");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
impl AppState {
    /// The state a server would hold, on SQLite in `dir`, without the HTTP part.
    pub async fn for_tests(dir: &std::path::Path) -> AppState {
        use crate::chat::{ChatService, Signals};
        use crate::config::Settings;
        use crate::projector::Projector;
        use crate::providers::registry::ProviderRegistry;
        use std::time::Duration;
        let db = crate::store::connect(None, dir).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let keys = crate::store::keys::KeyRing::ephemeral(db.clone());
        let projector = Projector::new(db.clone(), keys.clone());
        projector.prepare().await.unwrap();
        let bus = CommandBus::new(db.clone(), keys.clone());
        let chat = ChatService::new(
            db.clone(),
            bus.clone(),
            projector.clone(),
            ProviderRegistry::from_lookup(Duration::ZERO, |_| None, None),
            Signals::default(),
        );
        AppState {
            feed: crate::feed::FeedHub::new(db.clone(), keys),
            db,
            bus,
            projector,
            settings: Arc::new(Settings::new("127.0.0.1:0", dir)),
            limits: crate::auth::limits::Limits::new(Default::default()),
            passwords: crate::auth::passwords::Passwords::new(1, Duration::from_secs(5)),
            links: Default::default(),
            chat,
            http: reqwest::Client::new(),
            jwt: None,
            files: crate::files::FileStore::open(&Default::default(), dir).unwrap(),
            file_digests: Default::default(),
            fetcher: crate::tools::fetch::Fetcher::new(Default::default()).unwrap(),
            search: None,
            mcp: Default::default(),
        }
    }
}
