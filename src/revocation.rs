//! Ending long-lived streams when their credential stops being valid.
//!
//! A stream (a reply, the live feed) is opened with a credential: a session, an API key or an
//! external JWT. When that session is revoked (logout, `DELETE /v1/me/sessions/{id}`, linking
//! the anonymous account it belongs to) or the API key is revoked, every stream opened with it
//! ends within moments on every node: the feed's log tail (see [`crate::feed::FeedHub::run`])
//! sees the event and broadcasts it here; each stream listens and, when it is named, sends its
//! closing frame and ends.
//!
//! A revocation that lands between a stream's authentication and its subscription is caught by
//! the short memory of recent revocations that a new stream checks once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures::{Stream, StreamExt};
use threadline_domain::account::AccountEvent;
use threadline_projections::StoredEvent;
use tokio::sync::broadcast;

use crate::auth::{API_KEY_SESSION, Caller};

/// How long a revocation is remembered for streams that subscribe late.
const REMEMBER: Duration = Duration::from_secs(600);

/// What stopped being valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revoked {
    /// One credential (`Caller::session_id`: a session id or `api-key:<id>`).
    Credential(String),
    /// Every credential of an account (its anonymous identity was linked away, or it was
    /// erased).
    Account(String),
}

/// The node's revocations: a broadcast for open streams and a short memory for new ones.
#[derive(Clone)]
pub struct Revocations {
    sender: broadcast::Sender<Arc<Revoked>>,
    recent: Arc<Mutex<HashMap<Arc<Revoked>, Instant>>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(1024),
            recent: Arc::default(),
        }
    }
}

impl Revocations {
    /// Records what `event` revokes, if anything, and tells open streams.
    pub fn observe(&self, event: &StoredEvent) {
        if event.aggregate_type != "Account" {
            return;
        }
        let revoked = match event.event_type.as_str() {
            "AccountErased" => Revoked::Account(event.aggregate_id.clone()),
            "SessionRevoked" | "ApiKeyRevoked" | "AccountLinkedInto" => {
                match event.decode::<AccountEvent>() {
                    Ok(AccountEvent::SessionRevoked { session_id, .. }) => {
                        Revoked::Credential(session_id.to_string())
                    }
                    Ok(AccountEvent::ApiKeyRevoked { key_id, .. }) => {
                        Revoked::Credential(format!("{API_KEY_SESSION}{key_id}"))
                    }
                    Ok(AccountEvent::AccountLinkedInto { .. }) => {
                        Revoked::Account(event.aggregate_id.clone())
                    }
                    _ => return,
                }
            }
            _ => return,
        };
        self.publish(revoked);
    }

    fn publish(&self, revoked: Revoked) {
        let revoked = Arc::new(revoked);
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.retain(|_, at| now.duration_since(*at) < REMEMBER);
            recent.insert(revoked.clone(), now);
        }
        let _ = self.sender.send(revoked);
    }

    /// Whether `caller`'s credential was revoked a moment ago.
    fn recently_revoked(&self, caller: &Caller) -> bool {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.keys().any(|r| names(r, caller))
    }

    /// `stream`, ended with `closing` as soon as `caller`'s credential is revoked.
    pub fn guard<S>(
        &self,
        caller: &Caller,
        stream: S,
        closing: &'static str,
    ) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static
    where
        S: Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
    {
        let mut revoked = self.sender.subscribe();
        let already = self.recently_revoked(caller);
        let this = self.clone();
        let caller = caller.clone();
        async_stream::stream! {
            if already {
                yield Ok(Bytes::from_static(closing.as_bytes()));
                return;
            }
            let mut stream = std::pin::pin!(stream);
            let mut listening = true;
            loop {
                // The log's tail announces a revocation before it broadcasts the feed items
                // that follow it: listening first, nothing committed after the revocation
                // reaches the stream.
                tokio::select! {
                    biased;
                    r = revoked.recv(), if listening => {
                        let ended = match r {
                            Ok(r) => names(&r, &caller),
                            Err(broadcast::error::RecvError::Lagged(_)) => this.recently_revoked(&caller),
                            Err(broadcast::error::RecvError::Closed) => {
                                listening = false;
                                false
                            }
                        };
                        if ended {
                            tracing::info!(account = caller.id(), "stream ended: its credential was revoked");
                            yield Ok(Bytes::from_static(closing.as_bytes()));
                            return;
                        }
                    }
                    item = stream.next() => match item {
                        Some(item) => yield item,
                        None => return,
                    },
                }
            }
        }
    }
}

fn names(revoked: &Revoked, caller: &Caller) -> bool {
    match revoked {
        Revoked::Credential(c) => *c == caller.session_id,
        Revoked::Account(a) => a == caller.id(),
    }
}

/// The end of a UI message stream whose credential was revoked.
pub const REPLY_CLOSING: &str = "data: {\"type\":\"error\",\"errorText\":\"the session was revoked; sign in again\"}\n\ndata: [DONE]\n\n";

/// The end of the live feed whose credential was revoked.
pub const FEED_CLOSING: &str = "data: {\"type\":\"session.revoked\"}\n\n";
