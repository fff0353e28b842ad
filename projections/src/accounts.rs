//! Accounts and sessions: what authentication and `/v1/me` read.
//!
//! Tables: `accounts` (one row per account; `linked_into` set once an anonymous account was
//! linked into a registered one) and `sessions` (token hashes; `revoked_at` once revoked).

use serde::Serialize;
use threadline_domain::account::{AccountEvent, AccountKind};
use threadline_domain::personal::{REDACTED, unless_redacted};

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// A change to the accounts tables, produced by the pure fold [`apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The account was erased: its personal columns emptied, its sessions and API keys
    /// revoked.
    Erase {
        id: String,
    },
    EraseSessions {
        account_id: String,
        at: i64,
    },
    EraseApiKeys {
        account_id: String,
        at: i64,
    },
    InsertAccount {
        id: String,
        kind: &'static str,
        email: Option<String>,
        name: Option<String>,
        password_hash: Option<String>,
        created_at: i64,
    },
    LinkInto {
        id: String,
        target: String,
    },
    InsertSession {
        id: String,
        account_id: String,
        token_hash: String,
        user_agent: Option<String>,
        ip: Option<String>,
        created_at: i64,
    },
    RevokeSession {
        id: String,
        at: i64,
    },
    SetPreferences {
        id: String,
        preferences: String,
    },
    InsertApiKey {
        id: String,
        account_id: String,
        name: String,
        prefix: String,
        key_hash: String,
        created_at: i64,
    },
    RevokeApiKey {
        id: String,
        at: i64,
    },
    SetSubscription {
        id: String,
        provider: String,
        customer: Option<String>,
        status: String,
        pro_until: Option<i64>,
    },
    SetName {
        id: String,
        name: Option<String>,
    },
    SetImage {
        id: String,
        image_url: Option<String>,
    },
    SeenSession {
        id: String,
        at: i64,
    },
}

/// Folds one account event (of account `account_id`) into changes.
pub fn apply(account_id: &str, event: AccountEvent) -> Vec<Change> {
    let id = account_id.to_owned();
    match event {
        AccountEvent::AccountCreated { kind, at } => {
            let (kind, email, name, password_hash) = match kind {
                AccountKind::Anonymous => ("anonymous", None, None, None),
                AccountKind::Registered {
                    email,
                    name,
                    password_hash,
                } => (
                    "registered",
                    unless_redacted(Some(email.as_str().to_owned())),
                    unless_redacted(name.map(|n| n.as_str().to_owned())),
                    unless_redacted(Some(password_hash)),
                ),
                // An external identity's email is the provider's to keep unique: it is not
                // stored where registrations claim theirs.
                AccountKind::External {
                    name, anonymous, ..
                } => (
                    if anonymous { "anonymous" } else { "external" },
                    None,
                    name,
                    None,
                ),
            };
            vec![Change::InsertAccount {
                id,
                kind,
                email,
                name,
                password_hash,
                created_at: micros(at),
            }]
        }
        AccountEvent::SessionIssued {
            session_id,
            token_hash,
            user_agent,
            ip,
            at,
        } => vec![Change::InsertSession {
            id: session_id.to_string(),
            account_id: id,
            token_hash,
            user_agent,
            ip,
            created_at: micros(at),
        }],
        AccountEvent::SessionRevoked { session_id, at } => vec![Change::RevokeSession {
            id: session_id.to_string(),
            at: micros(at),
        }],
        AccountEvent::AccountLinkedInto {
            target_account_id, ..
        } => vec![Change::LinkInto {
            id,
            target: target_account_id.to_string(),
        }],
        AccountEvent::AnonymousAccountLinked { .. } => vec![],
        AccountEvent::ApiKeyCreated {
            key_id,
            name,
            prefix,
            key_hash,
            at,
        } => vec![Change::InsertApiKey {
            id: key_id.to_string(),
            account_id: id,
            name,
            prefix,
            key_hash,
            created_at: micros(at),
        }],
        AccountEvent::ApiKeyRevoked { key_id, at } => vec![Change::RevokeApiKey {
            id: key_id.to_string(),
            at: micros(at),
        }],
        AccountEvent::PreferencesUpdated { preferences, .. } => vec![Change::SetPreferences {
            id,
            preferences: serde_json::to_string(&preferences).unwrap_or_default(),
        }],
        AccountEvent::SubscriptionChanged { subscription, .. } => vec![Change::SetSubscription {
            id,
            provider: subscription.provider,
            customer: unless_redacted(subscription.customer_id),
            status: subscription.status,
            pro_until: subscription.pro_until.map(micros),
        }],
        AccountEvent::ProfileUpdated {
            name, image_url, ..
        } => vec![
            Change::SetName {
                id: id.clone(),
                name,
            },
            Change::SetImage { id, image_url },
        ],
        AccountEvent::SessionSeen { session_id, at } => vec![Change::SeenSession {
            id: session_id.to_string(),
            at: micros(at),
        }],
        AccountEvent::AccountErased { at } => vec![
            Change::EraseSessions {
                account_id: id.clone(),
                at: micros(at),
            },
            Change::EraseApiKeys {
                account_id: id.clone(),
                at: micros(at),
            },
            Change::Erase { id },
        ],
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let accounts = t.name("accounts");
    let sessions = t.name("sessions");
    let keys = t.name("api_keys");
    match change {
        Change::Erase { id } => Stmt::new(
            format!(
                "UPDATE {accounts} SET kind = 'erased', email = NULL, name = NULL, \
                 password_hash = NULL, preferences = NULL, image_url = NULL WHERE id = $1"
            ),
            vec![id.into()],
        ),
        Change::EraseSessions { account_id, at } => Stmt::new(
            format!(
                "UPDATE {sessions} SET user_agent = NULL, ip = NULL, \
                 revoked_at = COALESCE(revoked_at, $2) WHERE account_id = $1"
            ),
            vec![account_id.into(), at.into()],
        ),
        Change::EraseApiKeys { account_id, at } => Stmt::new(
            format!(
                "UPDATE {keys} SET name = $3, revoked_at = COALESCE(revoked_at, $2) \
                 WHERE account_id = $1"
            ),
            vec![account_id.into(), at.into(), REDACTED.into()],
        ),
        Change::InsertApiKey {
            id,
            account_id,
            name,
            prefix,
            key_hash,
            created_at,
        } => Stmt::new(
            format!(
                "INSERT INTO {keys} (id, account_id, name, prefix, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            vec![
                id.into(),
                account_id.into(),
                name.into(),
                prefix.into(),
                key_hash.into(),
                created_at.into(),
            ],
        ),
        Change::RevokeApiKey { id, at } => Stmt::new(
            format!("UPDATE {keys} SET revoked_at = $1 WHERE id = $2"),
            vec![at.into(), id.into()],
        ),
        Change::InsertAccount {
            id,
            kind,
            email,
            name,
            password_hash,
            created_at,
        } => Stmt::new(
            format!(
                "INSERT INTO {accounts} (id, kind, email, name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            vec![
                id.into(),
                kind.into(),
                email.into(),
                name.into(),
                password_hash.into(),
                created_at.into(),
            ],
        ),
        Change::LinkInto { id, target } => Stmt::new(
            format!("UPDATE {accounts} SET linked_into = $1 WHERE id = $2"),
            vec![target.into(), id.into()],
        ),
        Change::InsertSession {
            id,
            account_id,
            token_hash,
            user_agent,
            ip,
            created_at,
        } => Stmt::new(
            format!(
                "INSERT INTO {sessions} (id, account_id, token_hash, user_agent, ip, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            vec![
                id.into(),
                account_id.into(),
                token_hash.into(),
                user_agent.into(),
                ip.into(),
                created_at.into(),
            ],
        ),
        Change::SetPreferences { id, preferences } => Stmt::new(
            format!("UPDATE {accounts} SET preferences = $1 WHERE id = $2"),
            vec![preferences.into(), id.into()],
        ),
        Change::RevokeSession { id, at } => Stmt::new(
            format!("UPDATE {sessions} SET revoked_at = $1 WHERE id = $2"),
            vec![at.into(), id.into()],
        ),
        Change::SetName { id, name } => Stmt::new(
            format!("UPDATE {accounts} SET name = $1 WHERE id = $2"),
            vec![name.into(), id.into()],
        ),
        Change::SetImage { id, image_url } => Stmt::new(
            format!("UPDATE {accounts} SET image_url = $1 WHERE id = $2"),
            vec![image_url.into(), id.into()],
        ),
        Change::SeenSession { id, at } => Stmt::new(
            format!("UPDATE {sessions} SET last_seen_at = $1 WHERE id = $2"),
            vec![at.into(), id.into()],
        ),
        Change::SetSubscription {
            id,
            provider,
            customer,
            status,
            pro_until,
        } => Stmt::new(
            format!(
                "UPDATE {accounts} SET billing_provider = $1, billing_customer = $2, \
                 subscription_status = $3, pro_until = $4 WHERE id = $5"
            ),
            vec![
                provider.into(),
                customer.into(),
                status.into(),
                pro_until.into(),
                id.into(),
            ],
        ),
    }
}

/// The accounts projection.
pub struct Accounts;

impl Projection for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn version(&self) -> i64 {
        // 2: preferences. 3: API keys. 4: subscriptions, external identities. 5: profile
        // images, sessions' last use.
        5
    }

    fn tables(&self) -> &'static [&'static str] {
        &["accounts", "sessions", "api_keys"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let (accounts, sessions) = (t.name("accounts"), t.name("sessions"));
        let keys = t.name("api_keys");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {keys} (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    prefix TEXT NOT NULL,
                    key_hash TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    revoked_at BIGINT
                )"
            ),
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {keys} (key_hash)",
                t.index("api_keys", "hash")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {keys} (account_id, created_at)",
                t.index("api_keys", "account")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {accounts} (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    email TEXT,
                    name TEXT,
                    password_hash TEXT,
                    created_at BIGINT NOT NULL,
                    linked_into TEXT,
                    preferences TEXT,
                    billing_provider TEXT,
                    billing_customer TEXT,
                    subscription_status TEXT,
                    pro_until BIGINT,
                    image_url TEXT
                )"
            ),
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {accounts} (email)",
                t.index("accounts", "email")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {sessions} (
                    id TEXT PRIMARY KEY,
                    account_id TEXT NOT NULL,
                    token_hash TEXT NOT NULL,
                    user_agent TEXT,
                    ip TEXT,
                    created_at BIGINT NOT NULL,
                    revoked_at BIGINT,
                    last_seen_at BIGINT
                )"
            ),
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {sessions} (token_hash)",
                t.index("sessions", "token")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {sessions} (account_id, created_at)",
                t.index("sessions", "account")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        if event.aggregate_type != "Account" {
            return Ok(vec![]);
        }
        let event_body: AccountEvent = decode(event)?;
        Ok(apply(&event.aggregate_id, event_body)
            .into_iter()
            .map(|c| sql(c, tables))
            .collect())
    }
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub kind: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub linked_into: Option<String>,
    /// JSON of the account's `Preferences`, once set.
    #[serde(skip)]
    pub preferences: Option<String>,
    /// `polar` or `stripe`, once a subscription was reported.
    #[serde(skip)]
    pub billing_provider: Option<String>,
    #[serde(skip)]
    pub billing_customer: Option<String>,
    #[serde(skip)]
    pub subscription_status: Option<String>,
    /// The pro tier holds until this moment (micros), while a subscription is current.
    #[serde(skip)]
    pub pro_until: Option<i64>,
    /// The profile picture's URL, when set.
    pub image_url: Option<String>,
}

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub account_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When the session was last used (recorded every few minutes at most).
    pub last_seen_at: Option<i64>,
}

const ACCOUNT_COLUMNS: &str = "id, kind, email, name, password_hash, created_at, linked_into, \
     preferences, billing_provider, billing_customer, subscription_status, pro_until, image_url";
const SESSION_COLUMNS: &str =
    "id, account_id, user_agent, ip, created_at, revoked_at, last_seen_at";

/// The account with this id.
pub async fn account(db: &Db, id: &str) -> Result<Option<AccountRow>, sqlx::Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
    on_read!(db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)
}

/// The anonymous accounts linked into `id`.
pub async fn linked_into(db: &Db, id: &str) -> Result<Vec<String>, sqlx::Error> {
    on_read!(db, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE linked_into = $1 ORDER BY id")
        .bind(id)
        .fetch_all(pool)
        .await)
}

/// The registered account with this (normalised) email.
pub async fn account_by_email(db: &Db, email: &str) -> Result<Option<AccountRow>, sqlx::Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1");
    on_read!(db, pool => sqlx::query_as(&sql).bind(email).fetch_optional(pool).await)
}

/// The live session whose token hashes to `token_hash`, with its account (one query: every
/// authenticated request asks it).
pub async fn session_by_token_hash(
    db: &Db,
    token_hash: &str,
) -> Result<Option<(SessionRow, AccountRow)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Found {
        s_id: String,
        s_account_id: String,
        s_user_agent: Option<String>,
        s_ip: Option<String>,
        s_created_at: i64,
        s_revoked_at: Option<i64>,
        s_last_seen_at: Option<i64>,
        #[sqlx(flatten)]
        account: AccountRow,
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT s.id AS s_id, s.account_id AS s_account_id, s.user_agent AS s_user_agent, \
             s.ip AS s_ip, s.created_at AS s_created_at, s.revoked_at AS s_revoked_at, \
             s.last_seen_at AS s_last_seen_at, {} \
             FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND a.linked_into IS NULL",
            account_columns_of("a")
        )
    });
    let found: Option<Found> = on_read!(db, pool =>
        sqlx::query_as(SQL.as_str()).bind(token_hash).fetch_optional(pool).await)?;
    Ok(found.map(|f| {
        let session = SessionRow {
            id: f.s_id,
            account_id: f.s_account_id,
            user_agent: f.s_user_agent,
            ip: f.s_ip,
            created_at: f.s_created_at,
            revoked_at: f.s_revoked_at,
            last_seen_at: f.s_last_seen_at,
        };
        (session, f.account)
    }))
}

/// [`ACCOUNT_COLUMNS`] of the table named `alias` in a join (built once per query, at first use).
fn account_columns_of(alias: &str) -> String {
    ACCOUNT_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A personal API key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str = "id, account_id, name, prefix, created_at, revoked_at";

/// The live key whose secret hashes to `key_hash`, with its account (one query).
pub async fn api_key_by_hash(
    db: &Db,
    key_hash: &str,
) -> Result<Option<(ApiKeyRow, AccountRow)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Found {
        k_id: String,
        k_account_id: String,
        k_name: String,
        k_prefix: String,
        k_created_at: i64,
        k_revoked_at: Option<i64>,
        #[sqlx(flatten)]
        account: AccountRow,
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT k.id AS k_id, k.account_id AS k_account_id, k.name AS k_name, \
             k.prefix AS k_prefix, k.created_at AS k_created_at, k.revoked_at AS k_revoked_at, \
             {} FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.linked_into IS NULL",
            account_columns_of("a")
        )
    });
    let found: Option<Found> = on_read!(db, pool => sqlx::query_as(SQL.as_str()).bind(key_hash).fetch_optional(pool).await)?;
    Ok(found.map(|f| {
        let key = ApiKeyRow {
            id: f.k_id,
            account_id: f.k_account_id,
            name: f.k_name,
            prefix: f.k_prefix,
            created_at: f.k_created_at,
            revoked_at: f.k_revoked_at,
        };
        (key, f.account)
    }))
}

/// The live keys of an account, newest first.
pub async fn api_keys_of(db: &Db, account_id: &str) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id DESC"
    );
    on_read!(db, pool => sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await)
}

/// The live sessions of an account, newest first.
pub async fn sessions_of(db: &Db, account_id: &str) -> Result<Vec<SessionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id DESC"
    );
    on_read!(db, pool => sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await)
}

/// One session of an account (revoked or not).
pub async fn session(
    db: &Db,
    account_id: &str,
    session_id: &str,
) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND account_id = $2");
    on_read!(db, pool => sqlx::query_as(&sql).bind(session_id).bind(account_id).fetch_optional(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_empties_the_account_and_a_redacted_email_is_no_email() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let changes = apply("a1", AccountEvent::AccountErased { at });
        assert!(matches!(
            &changes[..],
            [Change::EraseSessions { account_id: s, .. }, Change::EraseApiKeys { account_id: k, .. }, Change::Erase { id }]
                if s == "a1" && k == "a1" && id == "a1"
        ));
        // A rebuild after the erasure reads the sealed values as redactions: no email, so
        // two erased accounts do not collide on the unique email index.
        let created = apply(
            "a1",
            AccountEvent::AccountCreated {
                kind: AccountKind::Registered {
                    email: threadline_domain::values::Email::parse("x@example.com").unwrap(),
                    name: None,
                    password_hash: REDACTED.into(),
                },
                at,
            },
        );
        assert!(matches!(
            &created[..],
            [Change::InsertAccount {
                email: Some(_),
                password_hash: None,
                ..
            }]
        ));
    }
    use chrono::DateTime;
    use threadline_domain::values::{AccountId, Email, SessionId};
    use uuid::Uuid;

    #[test]
    fn a_registered_account_becomes_a_row_with_email_and_hash() {
        let changes = apply(
            "a1",
            AccountEvent::AccountCreated {
                kind: AccountKind::Registered {
                    email: Email::parse("ada@example.com").unwrap(),
                    name: None,
                    password_hash: "h".into(),
                },
                at: DateTime::from_timestamp(1, 0).unwrap(),
            },
        );
        assert_eq!(
            changes,
            vec![Change::InsertAccount {
                id: "a1".into(),
                kind: "registered",
                email: Some("ada@example.com".into()),
                name: None,
                password_hash: Some("h".into()),
                created_at: 1_000_000,
            }]
        );
    }

    #[test]
    fn sessions_are_inserted_and_revoked_by_id() {
        let sid = SessionId(Uuid::from_u128(5));
        let issued = apply(
            "a1",
            AccountEvent::SessionIssued {
                session_id: sid,
                token_hash: "th".into(),
                user_agent: Some("curl".into()),
                ip: None,
                at: DateTime::UNIX_EPOCH,
            },
        );
        assert!(
            matches!(&issued[..], [Change::InsertSession { account_id, token_hash, .. }]
            if account_id == "a1" && token_hash == "th")
        );
        let revoked = apply(
            "a1",
            AccountEvent::SessionRevoked {
                session_id: sid,
                at: DateTime::from_timestamp(2, 0).unwrap(),
            },
        );
        assert_eq!(
            revoked,
            vec![Change::RevokeSession {
                id: sid.to_string(),
                at: 2_000_000
            }]
        );
    }

    #[test]
    fn a_linked_anonymous_account_points_at_its_target() {
        let target = AccountId(Uuid::from_u128(7));
        assert_eq!(
            apply(
                "anon",
                AccountEvent::AccountLinkedInto {
                    target_account_id: target,
                    at: DateTime::UNIX_EPOCH
                }
            ),
            vec![Change::LinkInto {
                id: "anon".into(),
                target: target.to_string()
            }]
        );
    }

    #[test]
    fn an_external_identity_is_a_row_without_the_providers_email() {
        let created = |anonymous| {
            apply(
                "a1",
                AccountEvent::AccountCreated {
                    kind: AccountKind::External {
                        issuer: Some("https://idp".into()),
                        subject: "u1".into(),
                        email: Some("ada@example.com".into()),
                        name: Some("Ada".into()),
                        anonymous,
                    },
                    at: chrono::DateTime::UNIX_EPOCH,
                },
            )
        };
        assert!(matches!(
            &created(false)[..],
            [Change::InsertAccount { kind: "external", email: None, name: Some(n), password_hash: None, .. }] if n == "Ada"
        ));
        assert!(matches!(
            &created(true)[..],
            [Change::InsertAccount {
                kind: "anonymous",
                ..
            }]
        ));
    }

    #[test]
    fn a_subscription_change_sets_the_billing_columns() {
        let until = chrono::DateTime::from_timestamp(2_000_000_000, 0).unwrap();
        let changes = apply(
            "a1",
            AccountEvent::SubscriptionChanged {
                subscription: threadline_domain::account::Subscription {
                    provider: "stripe".into(),
                    subscription_id: "sub_1".into(),
                    customer_id: Some("cus_1".into()),
                    status: "active".into(),
                    pro_until: Some(until),
                    as_of: None,
                },
                at: until,
            },
        );
        assert_eq!(
            changes,
            vec![Change::SetSubscription {
                id: "a1".into(),
                provider: "stripe".into(),
                customer: Some("cus_1".into()),
                status: "active".into(),
                pro_until: Some(until.timestamp_micros()),
            }]
        );
    }

    #[test]
    fn an_erased_customer_id_is_no_customer() {
        let mut subscription = threadline_domain::account::Subscription {
            provider: "stripe".into(),
            subscription_id: "sub_1".into(),
            customer_id: Some(REDACTED.into()),
            status: "canceled".into(),
            pro_until: None,
            as_of: None,
        };
        let at = chrono::DateTime::UNIX_EPOCH;
        let changes = apply(
            "a1",
            AccountEvent::SubscriptionChanged {
                subscription: subscription.clone(),
                at,
            },
        );
        assert!(matches!(
            &changes[..],
            [Change::SetSubscription { customer: None, .. }]
        ));
        subscription.customer_id = Some("cus_1".into());
        let changes = apply("a1", AccountEvent::SubscriptionChanged { subscription, at });
        assert!(
            matches!(&changes[..], [Change::SetSubscription { customer: Some(c), .. }] if c == "cus_1")
        );
    }

    #[test]
    fn shadow_tables_get_their_own_names() {
        let shadow = Tables::shadow("42");
        let stmts = sql(
            Change::RevokeSession {
                id: "s".into(),
                at: 1,
            },
            &shadow,
        );
        assert!(stmts.sql.contains("sessions__rebuild"));
        assert!(
            Accounts
                .ddl(Backend::Sqlite, &shadow)
                .iter()
                .any(|ddl| ddl.contains("ix_accounts__rebuild_email_42"))
        );
    }
}
