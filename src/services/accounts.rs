//! Sign-up, sign-in and linking.
//!
//! Linking order matters: the anonymous stream is closed first (`LinkInto`, which fails if a
//! concurrent request already linked it), then the registered stream records the link
//! (`AbsorbAnonymous`). Projections move the anonymous account's threads when they fold the
//! latter.

use chrono::Utc;
use threadline_domain::account::{self, Account, AccountCommand, Preferences};
use threadline_domain::email::{EmailCommand, EmailRegistration};
use threadline_domain::values::{AccountId, DisplayName, Email, SessionId};
use threadline_projections::accounts as account_view;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::services::credits;
use crate::state::AppState;
use crate::store::bus::CommandMeta;
use crate::store::log::Cursor;

/// A session just issued: the only moment its token is visible.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedSession {
    pub token: String,
    pub session_id: String,
    pub account_id: String,
    /// The anonymous account linked into this one by this request, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_account_id: Option<String>,
}

/// Where a request came from, recorded on its session.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// The caller's preferences, or the defaults (the server's default model pinned).
pub fn preferences_of(state: &AppState, caller: &Caller) -> Preferences {
    caller
        .account
        .preferences
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| Preferences {
            pinned_models: vec![state.chat.registry.default_id().to_owned()],
            ..Preferences::default()
        })
}

/// Creates an anonymous account with a session.
pub async fn create_anonymous(
    state: &AppState,
    client: Client,
    request_id: &str,
) -> Result<IssuedSession, ApiError> {
    let id = AccountId::generate();
    let meta = CommandMeta::for_request(request_id, Some(id.to_string()));
    state
        .send::<Account>(
            &id.to_string(),
            AccountCommand::CreateAnonymous { at: Utc::now() },
            &meta,
        )
        .await?;
    let (issued, cursor) = issue_session(state, id, client, &meta).await?;
    state.settle(cursor).await;
    Ok(issued)
}

/// Registers an email account; with an anonymous caller, links it into the new account.
///
/// A registration that is refused creates no account and keeps no email: the address is
/// claimed first (two sign-ups racing for it are decided there), then the anonymous account is
/// closed into the new one (sign-ups racing with one anonymous token are decided there), and
/// only then is the account created. A refused link gives the address back.
pub async fn register(
    state: &AppState,
    email: Email,
    name: Option<DisplayName>,
    password: String,
    caller: Option<Caller>,
    client: Client,
    request_id: &str,
) -> Result<IssuedSession, ApiError> {
    state.limits.registration(client.ip)?;
    let id = AccountId::generate();
    let meta = CommandMeta::for_request(request_id, Some(id.to_string()));
    let password_hash = state.passwords.hash(password).await?;
    let anonymous = caller.filter(Caller::is_anonymous);
    let _turn = match &anonymous {
        Some(anonymous) => Some(link_turn(state, anonymous).await?),
        None => None,
    };
    // Addresses registered before claims were keyed by a blind index hold a stream named by
    // the address itself; the projection knows them.
    if account_view::account_by_email(&state.db, email.as_str())
        .await?
        .is_some()
    {
        return Err(threadline_domain::email::EmailError::AlreadyClaimed.into());
    }
    state
        .send::<EmailRegistration>(
            &email_stream(state.chat.keys(), email.as_str()),
            EmailCommand::Claim {
                account_id: id,
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    if let Some(anonymous) = &anonymous
        && let Err(e) = close_anonymous(state, anonymous, id, &meta).await
    {
        release_email(state, &email, id, &meta).await;
        return Err(e);
    }
    state
        .send::<Account>(
            &id.to_string(),
            AccountCommand::Register {
                email,
                name,
                password_hash,
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    let linked = match &anonymous {
        Some(anonymous) => Some(absorb(state, anonymous, id, &meta).await?),
        None => None,
    };
    issue(state, id, linked, client, &meta).await
}

/// The stream that makes `email` unique: named by its blind index, so that the log's stream
/// ids hold no address (an erased account's address must not stay in the log).
pub fn email_stream(keys: &crate::store::keys::KeyRing, email: &str) -> String {
    format!("idx:{}", keys.blind_index(email))
}

/// Gives back an address claimed by a registration that was then refused.
async fn release_email(state: &AppState, email: &Email, id: AccountId, meta: &CommandMeta) {
    let released = state
        .send::<EmailRegistration>(
            &email_stream(state.chat.keys(), email.as_str()),
            EmailCommand::Release {
                account_id: id,
                at: Utc::now(),
            },
            meta,
        )
        .await;
    if let Err(e) = released {
        tracing::error!(error = %e, account = %id, "cannot release the email of a refused registration");
    }
}

/// Signs in with email and password; with an anonymous caller, links it into the account.
pub async fn login(
    state: &AppState,
    email: Email,
    password: String,
    caller: Option<Caller>,
    client: Client,
    request_id: &str,
) -> Result<IssuedSession, ApiError> {
    state.limits.login_allowed(email.as_str(), client.ip)?;
    let found = account_view::account_by_email(&state.db, email.as_str()).await?;
    let stored_hash = found.as_ref().and_then(|a| a.password_hash.clone());
    let valid = state.passwords.verify(password, stored_hash).await?;
    let (true, Some(account)) = (valid, found) else {
        state.limits.login_failed(email.as_str(), client.ip);
        return Err(ApiError::Unauthorized {
            code: crate::error::ErrorCode::InvalidCredentials,
            detail: "the email or password is wrong".into(),
        });
    };
    let id = AccountId::parse(&account.id).map_err(|e| ApiError::Internal(e.to_string()))?;
    let meta = CommandMeta::for_request(request_id, Some(account.id.clone()));
    finish_sign_in(state, id, caller, client, &meta).await
}

/// Revokes one of the account's sessions.
pub async fn revoke_session(
    state: &AppState,
    caller: &Caller,
    session_id: SessionId,
    request_id: &str,
) -> Result<(), ApiError> {
    let meta = CommandMeta::for_request(request_id, Some(caller.id().to_owned()));
    state
        .run::<Account>(
            caller.id(),
            AccountCommand::RevokeSession {
                session_id,
                at: Utc::now(),
            },
            &meta,
        )
        .await
}

async fn finish_sign_in(
    state: &AppState,
    id: AccountId,
    caller: Option<Caller>,
    client: Client,
    meta: &CommandMeta,
) -> Result<IssuedSession, ApiError> {
    let linked = match caller.filter(Caller::is_anonymous) {
        Some(anonymous) => {
            let _turn = link_turn(state, &anonymous).await?;
            close_anonymous(state, &anonymous, id, meta).await?;
            Some(absorb(state, &anonymous, id, meta).await?)
        }
        None => None,
    };
    issue(state, id, linked, client, meta).await
}

async fn issue(
    state: &AppState,
    id: AccountId,
    linked: Option<String>,
    client: Client,
    meta: &CommandMeta,
) -> Result<IssuedSession, ApiError> {
    let (mut issued, cursor) = issue_session(state, id, client, meta).await?;
    issued.linked_account_id = linked;
    state.settle(cursor).await;
    Ok(issued)
}

/// Takes the anonymous account's turn for linking on this node, and refuses when a sign-in
/// that held it before has linked it already.
async fn link_turn(
    state: &AppState,
    anonymous: &Caller,
) -> Result<crate::keyed_lock::KeyedGuard<String>, ApiError> {
    let turn = state.links.lock(anonymous.id().to_owned()).await;
    let linked = crate::store::log::latest_payload(
        &state.db,
        "Account",
        anonymous.id(),
        "AccountLinkedInto",
    )
    .await?;
    match linked {
        Some(_) => Err(account::AccountError::AlreadyLinked.into()),
        None => Ok(turn),
    }
}

/// Closes the anonymous account into `target` (its sessions end); fails when a concurrent
/// request linked it first.
async fn close_anonymous(
    state: &AppState,
    anonymous: &Caller,
    target: AccountId,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let anonymous_id =
        AccountId::parse(anonymous.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    account::check_link(anonymous_id, target)?;
    state
        .send::<Account>(
            anonymous.id(),
            AccountCommand::LinkInto {
                target,
                at: Utc::now(),
            },
            meta,
        )
        .await
        .map(drop)
}

/// Records the link on the registered account and carries the anonymous account's use over.
async fn absorb(
    state: &AppState,
    anonymous: &Caller,
    target: AccountId,
    meta: &CommandMeta,
) -> Result<String, ApiError> {
    let anonymous_id =
        AccountId::parse(anonymous.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .send::<Account>(
            &target.to_string(),
            AccountCommand::AbsorbAnonymous {
                anonymous: anonymous_id,
                at: Utc::now(),
            },
            meta,
        )
        .await?;
    carry_usage(state, anonymous, &target.to_string(), meta).await?;
    tracing::info!(anonymous = %anonymous_id, into = %target, "linked anonymous account");
    Ok(anonymous_id.to_string())
}

/// Moves what the anonymous account has used in its current windows into the registered
/// account's (so that signing up never resets a quota), its purchased credits, and its
/// preferences when the registered account has none. Both ledgers show it: a `carried` line on
/// the registered account, `moved_out`/`added` lines for purchased credits.
async fn carry_usage(
    state: &AppState,
    anonymous: &Caller,
    target: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    use threadline_domain::ledger::{CreditWindow, LedgerCommand};
    use threadline_domain::plans::{self, Meter};
    let now = Utc::now();
    let tier = credits::tier_of(anonymous);
    let target_tier = match account_view::account(&state.db, target).await? {
        Some(row) => credits::tier_at(&row, now),
        None => threadline_domain::catalog::Tier::Free,
    };
    for meter in Meter::ALL {
        let Some((window, _)) = credits::current_window(state, tier, meter, now) else {
            continue;
        };
        let from = plans::window_id(anonymous.id(), meter.as_str(), &window.key);
        let spent = threadline_projections::usage::window(&state.db, &from)
            .await?
            .map_or(0, |w| w.committed());
        if spent == 0 {
            continue;
        }
        // The registered account's window of the same meter now (its plan may cut windows
        // differently; the use lands in its current one).
        let key = credits::current_window(state, target_tier, meter, now)
            .map_or(window.key, |(w, _)| w.key);
        state
            .send::<CreditWindow>(
                &plans::window_id(target, meter.as_str(), &key),
                LedgerCommand::Carry {
                    from_account: anonymous.id().to_owned(),
                    amount: spent,
                    at: now,
                },
                meta,
            )
            .await?;
    }
    credits::move_purchased(state, anonymous.id(), target, meta).await?;
    carry_preferences(state, anonymous, target, meta).await
}

/// Gives the registered account the anonymous account's preferences when it has none.
async fn carry_preferences(
    state: &AppState,
    anonymous: &Caller,
    target: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let Some(prefs) = anonymous.account.preferences.as_deref() else {
        return Ok(());
    };
    let target_row = account_view::account(&state.db, target).await?;
    if target_row.is_some_and(|row| row.preferences.is_some()) {
        return Ok(());
    }
    let Ok(preferences) = serde_json::from_str(prefs) else {
        return Ok(());
    };
    state
        .send::<Account>(
            target,
            AccountCommand::SetPreferences {
                preferences,
                at: Utc::now(),
            },
            meta,
        )
        .await
        .map(drop)
}

async fn issue_session(
    state: &AppState,
    id: AccountId,
    client: Client,
    meta: &CommandMeta,
) -> Result<(IssuedSession, Option<Cursor>), ApiError> {
    let token = auth::new_token();
    let session_id = SessionId::generate();
    let cursor = state
        .send::<Account>(
            &id.to_string(),
            AccountCommand::IssueSession {
                session_id,
                token_hash: auth::hash_token(&token),
                user_agent: client.user_agent.map(|ua| ua.chars().take(256).collect()),
                ip: client.ip.map(|ip| ip.to_string()),
                at: Utc::now(),
            },
            meta,
        )
        .await?;
    Ok((
        IssuedSession {
            token,
            session_id: session_id.to_string(),
            account_id: id.to_string(),
            linked_account_id: None,
        },
        cursor,
    ))
}
