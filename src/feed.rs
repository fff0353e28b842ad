//! The per-account live feed (`GET /v1/events`): what a sidebar needs to stay in sync across
//! devices — threads created, renamed or titled, archived, pinned, deleted; messages posted or
//! hidden; the current branch; replies started and finished; shares; usage and preference
//! changes — and ephemeral signals (typing) that are not in the log.
//!
//! One task per node tails the global log and broadcasts feed items; each connection filters
//! them by owner. A reconnecting client sends `Last-Event-ID` (a log cursor `"{tx}.{position}"`)
//! and first gets what it missed from the log, then a `ready` item naming the log's head, then
//! the live items, de-duplicated by cursor. An account's backlog includes the items of the
//! anonymous accounts linked into it.
//!
//! Typing signals are ephemeral on purpose: they are worth something only for the seconds they
//! describe, and a log entry per keystroke pause would be history nobody reads. They go to the
//! caller's other connections on this node directly and to other nodes through PostgreSQL
//! `NOTIFY`; a connection that is not open when one is sent never sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use threadline_domain::thread::ThreadEvent;
use threadline_projections::{Db, StoredEvent, threads};
use tokio::sync::{broadcast, watch};

use crate::chat::Signals;
use crate::projector::Projector;
use crate::store::keys::{KeyError, KeyRing};
use crate::store::log::{self, Cursor, cursor_id};

/// One item of the feed.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub cursor: Cursor,
    pub owner: String,
    pub json: Value,
}

/// A signal for an account's connections that is not in the log (typing).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ephemeral {
    pub owner: String,
    /// The connection's credential that sent it: it is not echoed back there.
    pub from_session: String,
    pub json: Value,
}

/// How long the tail waits for the projections to show a batch before sending it anyway.
const PROJECTION_WAIT: Duration = Duration::from_secs(3);

/// The PostgreSQL channel that carries ephemeral signals between nodes.
const EPHEMERAL_CHANNEL: &str = "threadline_ephemeral";

/// The node's feed: the tailing task's output and the owner cache it shares with backlogs.
#[derive(Clone)]
pub struct FeedHub {
    db: Db,
    keys: KeyRing,
    items: broadcast::Sender<Arc<Vec<FeedItem>>>,
    owners: Arc<Mutex<HashMap<String, String>>>,
    /// Revoked credentials, seen by the same tail of the log.
    pub revocations: crate::revocation::Revocations,
    ephemeral: broadcast::Sender<Arc<Ephemeral>>,
}

impl FeedHub {
    /// A hub over `db`, opening titles with `keys` (start its task with [`FeedHub::run`]).
    pub fn new(db: Db, keys: KeyRing) -> Self {
        Self {
            db,
            keys,
            items: broadcast::Sender::new(1024),
            owners: Arc::default(),
            revocations: Default::default(),
            ephemeral: broadcast::Sender::new(1024),
        }
    }

    /// Sends an ephemeral signal to `owner`'s other connections, on every node.
    pub async fn signal(&self, signal: Ephemeral) -> Result<(), sqlx::Error> {
        match &self.db {
            Db::Postgres(pool) => {
                // Every node, this one included, hears it through its listener.
                let payload = serde_json::to_string(&signal).unwrap_or_default();
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(EPHEMERAL_CHANNEL)
                    .bind(payload)
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite { .. } => {
                let _ = self.ephemeral.send(Arc::new(signal));
            }
        }
        Ok(())
    }

    /// Forwards other nodes' ephemeral signals (PostgreSQL only) until `stop`.
    pub async fn listen(self, mut stop: watch::Receiver<bool>) {
        let Db::Postgres(pool) = &self.db else { return };
        loop {
            let forward = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(EPHEMERAL_CHANNEL).await?;
                loop {
                    let note = listener.recv().await?;
                    if let Ok(signal) = serde_json::from_str::<Ephemeral>(note.payload()) {
                        let _ = self.ephemeral.send(Arc::new(signal));
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                result = forward => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "ephemeral listener lost; reconnecting");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Tails the log from its head until `stop`, broadcasting feed items. A batch goes out
    /// once the projections show it (bounded by [`PROJECTION_WAIT`]), so a client that reacts
    /// to `thread.created` by reading the thread finds it.
    pub async fn run(
        self,
        projector: Projector,
        signals: Signals,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut changed = signals.subscribe();
        let mut cursor = loop {
            match log::head(&self.db).await {
                Ok(head) => break head,
                Err(e) => {
                    tracing::warn!(error = %e, "feed cannot read the log head");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            match self.items_after(cursor, 1000, true).await {
                Ok((items, last)) => {
                    cursor = last;
                    if !items.is_empty() {
                        if !projector.wait_for(last, PROJECTION_WAIT).await {
                            tracing::warn!(
                                ?last,
                                "feed items go out before the projections show them"
                            );
                        }
                        let _ = self.items.send(Arc::new(items));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "feed cannot read the log"),
            }
            tokio::select! {
                // A streaming reply changes the log every few milliseconds: what commits
                // within the projector's linger is read as one batch.
                _ = changed.changed() => tokio::time::sleep(crate::projector::LINGER).await,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Feed items after `after` (reading `limit` log events at a time) and the cursor
    /// reached. The node's tail (`live`) also tells open streams about revocations.
    async fn items_after(
        &self,
        after: Cursor,
        limit: i64,
        live: bool,
    ) -> Result<(Vec<FeedItem>, Cursor), sqlx::Error> {
        let mut cursor = after;
        let mut items = Vec::new();
        loop {
            let mut events = log::read_tail(&self.db, cursor, limit).await?;
            let Some(last) = events.last().map(StoredEvent::cursor) else {
                return Ok((items, cursor));
            };
            self.keys
                .open_events(&mut events)
                .await
                .map_err(KeyError::into_sqlx)?;
            for event in &events {
                if live {
                    self.revocations.observe(event);
                    if event.event_type == "AccountErased" {
                        // Erased on any node: this one must not open its values any more.
                        self.keys.forget(&event.aggregate_id);
                    }
                }
                if let Some(item) = self.item(event).await? {
                    items.push(item);
                }
            }
            cursor = last;
            if (events.len() as i64) < limit {
                return Ok((items, cursor));
            }
        }
    }

    async fn owner_of(
        &self,
        thread_id: &str,
        event: &StoredEvent,
    ) -> Result<Option<String>, sqlx::Error> {
        let cached = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(thread_id)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let owner = match threads::owner_of(&self.db, thread_id).await? {
            Some(owner) => Some(owner),
            None => event.metadata["actor"].as_str().map(str::to_owned),
        };
        if let Some(owner) = &owner {
            self.remember(thread_id, owner);
        }
        Ok(owner)
    }

    fn remember(&self, thread_id: &str, owner: &str) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if owners.len() > 100_000 {
            owners.clear();
        }
        owners.insert(thread_id.to_owned(), owner.to_owned());
    }

    async fn item(&self, event: &StoredEvent) -> Result<Option<FeedItem>, sqlx::Error> {
        if event.event_type == "AnonymousAccountLinked" {
            // Threads changed owners: forget what was cached.
            self.owners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
        let at = threadline_projections::rfc3339(event.recorded_at);
        match (event.aggregate_type.as_str(), event.event_type.as_str()) {
            ("Account", "PreferencesUpdated") => {
                return Ok(Some(FeedItem {
                    cursor: event.cursor(),
                    owner: event.aggregate_id.clone(),
                    json: json!({"type": "preferences.changed", "at": at}),
                }));
            }
            ("CreditWindow", kind) if !kind.is_empty() => {
                // `{account}:{meter}:{window}`, or `{account}:purchased:{book}`.
                let mut parts = event.aggregate_id.splitn(3, ':');
                let (Some(owner), Some(meter)) = (parts.next(), parts.next()) else {
                    return Ok(None);
                };
                return Ok(Some(FeedItem {
                    cursor: event.cursor(),
                    owner: owner.to_owned(),
                    json: json!({"type": "usage.changed", "meter": meter, "at": at}),
                }));
            }
            ("Thread", _) => {}
            _ => return Ok(None),
        }
        let Ok(thread_event) = event.decode::<ThreadEvent>() else {
            return Ok(None);
        };
        let thread_id = event.aggregate_id.as_str();
        if let ThreadEvent::ThreadCreated { owner, .. } = &thread_event {
            self.remember(thread_id, &owner.to_string());
        }
        let Some(owner) = self.owner_of(thread_id, event).await? else {
            return Ok(None);
        };
        let json = match thread_event {
            ThreadEvent::ThreadCreated { title, .. } => {
                json!({"type": "thread.created", "thread_id": thread_id, "title": title, "at": at})
            }
            ThreadEvent::ThreadRenamed { title, source, .. } => json!({
                "type": "thread.titled", "thread_id": thread_id, "title": title,
                "source": source, "at": at,
            }),
            ThreadEvent::ThreadArchived { .. } => {
                json!({"type": "thread.updated", "thread_id": thread_id, "archived": true, "at": at})
            }
            ThreadEvent::ThreadUnarchived { .. } => {
                json!({"type": "thread.updated", "thread_id": thread_id, "archived": false, "at": at})
            }
            ThreadEvent::ThreadPinned { .. } => {
                json!({"type": "thread.updated", "thread_id": thread_id, "pinned": true, "at": at})
            }
            ThreadEvent::ThreadUnpinned { .. } => {
                json!({"type": "thread.updated", "thread_id": thread_id, "pinned": false, "at": at})
            }
            ThreadEvent::ThreadDeleted { .. } => {
                json!({"type": "thread.deleted", "thread_id": thread_id, "at": at})
            }
            ThreadEvent::UserMessagePosted { message_id, .. } => json!({
                "type": "message.posted", "thread_id": thread_id, "message_id": message_id, "at": at,
            }),
            ThreadEvent::ReplyStarted {
                generation_id,
                message_id,
                model,
                ..
            } => json!({
                "type": "reply.started", "thread_id": thread_id, "generation_id": generation_id,
                "message_id": message_id, "model": model, "at": at,
            }),
            ThreadEvent::ReplyFinished {
                generation_id,
                status,
                ..
            } => json!({
                "type": "reply.finished", "thread_id": thread_id, "generation_id": generation_id,
                "status": status.as_str(), "at": at,
            }),
            ThreadEvent::CurrentMessageChosen { message_id, .. } => json!({
                "type": "thread.updated", "thread_id": thread_id, "current_message_id": message_id,
                "at": at,
            }),
            ThreadEvent::MessageHidden { message_id, .. } => json!({
                "type": "message.hidden", "thread_id": thread_id, "message_id": message_id, "at": at,
            }),
            ThreadEvent::ThreadShared {
                share_id,
                message_id,
                ..
            } => json!({
                "type": "share.created", "thread_id": thread_id, "share_id": share_id,
                "message_id": message_id, "at": at,
            }),
            ThreadEvent::ShareRevoked { share_id, .. } => json!({
                "type": "share.revoked", "thread_id": thread_id, "share_id": share_id, "at": at,
            }),
            ThreadEvent::ReplyStopRequested { .. } | ThreadEvent::HistoryCopied { .. } => {
                return Ok(None);
            }
        };
        Ok(Some(FeedItem {
            cursor: event.cursor(),
            owner,
            json,
        }))
    }

    /// The feed of `account`, after `after` when resuming.
    pub fn stream(
        self,
        account: String,
        session: String,
        after: Option<Cursor>,
    ) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        async_stream::stream! {
            // Subscribe before reading the backlog, then skip by cursor: nothing is lost or
            // doubled at the seam.
            let mut live = self.items.subscribe();
            let mut signals = self.ephemeral.subscribe();
            // Items of anonymous accounts linked into this one are its own (a backlog reaches
            // back before the link).
            let mut accounts = vec![account.clone()];
            match threadline_projections::threads::linked_into(&self.db, &account).await {
                Ok(linked) => accounts.extend(linked),
                Err(e) => tracing::warn!(error = %e, "feed cannot read account links"),
            }
            // Without a cursor the feed starts now: nothing before the log's current head.
            let mut last = match after {
                Some(after) => after,
                None => log::head(&self.db).await.unwrap_or((i64::MIN, i64::MIN)),
            };
            if let Some(after) = after {
                match self.items_after(after, 1000, false).await {
                    Ok((items, reached)) => {
                        let text = render(&items, &accounts, &mut last);
                        last = last.max(reached);
                        if !text.is_empty() {
                            yield Ok(Bytes::from(text));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "feed backlog failed"),
                }
            }
            let mut keepalive = tokio::time::interval(Duration::from_secs(15));
            keepalive.tick().await;
            // The position the client is in sync with from here on: where the backlog ended
            // (or the head read above). Not a fresh head: what was committed since reaches this
            // connection on the live channel, and a later head would skip it.
            yield Ok(Bytes::from(format!(
                "id: {id}\ndata: {}\n\n",
                json!({"type": "ready", "cursor": cursor_id(last)}),
                id = cursor_id(last)
            )));
            loop {
                tokio::select! {
                    batch = live.recv() => match batch {
                        Ok(items) => {
                            let text = render(&items, &accounts, &mut last);
                            if !text.is_empty() {
                                yield Ok(Bytes::from(text));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Too slow for the live feed: catch up from the log.
                            if let Ok((items, _)) = self.items_after(last, 1000, false).await {
                                let text = render(&items, &accounts, &mut last);
                                if !text.is_empty() {
                                    yield Ok(Bytes::from(text));
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    signal = signals.recv() => match signal {
                        Ok(signal) if signal.owner == account && signal.from_session != session => {
                            yield Ok(Bytes::from(format!("data: {}\n\n", signal.json)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = keepalive.tick() => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
                }
            }
        }
    }
}

/// The SSE text of the items of `accounts` (an account and those linked into it) after
/// `last`, advancing `last`.
fn render(items: &[FeedItem], accounts: &[String], last: &mut Cursor) -> String {
    let mut out = String::new();
    for item in items {
        if item.cursor <= *last {
            continue;
        }
        *last = item.cursor;
        if accounts.contains(&item.owner) {
            out.push_str(&format!(
                "id: {}\ndata: {}\n\n",
                cursor_id(item.cursor),
                item.json
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pos: i64, owner: &str) -> FeedItem {
        FeedItem {
            cursor: (0, pos),
            owner: owner.into(),
            json: json!({"type": "thread.created", "n": pos}),
        }
    }

    #[test]
    fn a_connection_sees_only_its_own_items_once_in_order() {
        let mut last = (0, 1);
        let items = vec![item(1, "a"), item(2, "a"), item(3, "b"), item(4, "a")];
        let text = render(&items, &["a".to_owned()], &mut last);
        assert_eq!(text.matches("data: ").count(), 2, "{text}");
        assert!(text.contains("id: 0.2") && text.contains("id: 0.4"));
        assert_eq!(last, (0, 4));
        assert!(
            render(&items, &["a".to_owned()], &mut last).is_empty(),
            "no doubles"
        );
    }
}
