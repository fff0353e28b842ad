//! Remote MCP (Model Context Protocol) servers: one `McpServer` stream per server name, holding
//! where an admin registered it (its Streamable HTTP URL), the bearer secret sent to it and
//! whether its tools are offered to models.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;

/// A server's name: `^[a-z][a-z0-9_-]{0,31}$`. It prefixes its tools' names (`name.tool`),
/// so it never holds a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct McpServerName(String);

impl McpServerName {
    /// The name, if it is 1-32 characters of lowercase letters, digits, `_` and `-` starting
    /// with a letter.
    pub fn parse(name: &str) -> Result<McpServerName, &'static str> {
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if starts_with_letter && rest_ok && name.len() <= 32 {
            Ok(McpServerName(name.to_owned()))
        } else {
            Err("1-32 characters of a-z, 0-9, _ and -, starting with a letter")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a registration does to the stored bearer secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    /// Keep the current one (none for a new server).
    Keep,
    /// Replace it.
    Set(String),
    /// Send no `Authorization` header any more.
    Clear,
}

/// Commands of an MCP server registration.
#[derive(Debug, Clone, PartialEq)]
pub enum McpServerCommand {
    /// Registers the server, or changes its registration (writes nothing when unchanged).
    Register {
        url: String,
        secret: SecretChange,
        enabled: bool,
        at: DateTime<Utc>,
    },
    /// Forgets the server; refused for a server that is not registered.
    Remove { at: DateTime<Utc> },
}

/// Events of an MCP server registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum McpServerEvent {
    McpServerRegistered {
        url: String,
        secret: Option<String>,
        enabled: bool,
        at: DateTime<Utc>,
    },
    McpServerUpdated {
        url: String,
        secret: Option<String>,
        enabled: bool,
        at: DateTime<Utc>,
    },
    McpServerRemoved {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for McpServerEvent {
    fn event_type(&self) -> String {
        match self {
            McpServerEvent::McpServerRegistered { .. } => "McpServerRegistered",
            McpServerEvent::McpServerUpdated { .. } => "McpServerUpdated",
            McpServerEvent::McpServerRemoved { .. } => "McpServerRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Why an MCP server command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpServerError {
    /// The server is not registered (404).
    #[error("no MCP server is registered under this name")]
    NotRegistered,
}

/// The registration as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registration {
    url: String,
    secret: Option<String>,
    enabled: bool,
}

/// The current registration of one server name (none before it is registered or after it
/// is removed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    current: Option<Registration>,
}

impl crate::personal::DataSubject for McpServer {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
    }
}

impl Aggregate for McpServer {
    const TYPE: &'static str = "McpServer";
    type Command = McpServerCommand;
    type Event = McpServerEvent;
    type Error = McpServerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            McpServerCommand::Register {
                url,
                secret,
                enabled,
                at,
            } => {
                let kept = self.current.as_ref().and_then(|c| c.secret.clone());
                let secret = match secret {
                    SecretChange::Keep => kept,
                    SecretChange::Set(secret) => Some(secret),
                    SecretChange::Clear => None,
                };
                let next = Registration {
                    url,
                    secret,
                    enabled,
                };
                match &self.current {
                    Some(current) if *current == next => return Ok(()),
                    Some(_) => McpServerEvent::McpServerUpdated {
                        url: next.url,
                        secret: next.secret,
                        enabled: next.enabled,
                        at,
                    },
                    None => McpServerEvent::McpServerRegistered {
                        url: next.url,
                        secret: next.secret,
                        enabled: next.enabled,
                        at,
                    },
                }
            }
            McpServerCommand::Remove { at } => {
                if self.current.is_none() {
                    return Err(McpServerError::NotRegistered);
                }
                McpServerEvent::McpServerRemoved { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            McpServerEvent::McpServerRegistered {
                url,
                secret,
                enabled,
                ..
            }
            | McpServerEvent::McpServerUpdated {
                url,
                secret,
                enabled,
                ..
            } => {
                self.current = Some(Registration {
                    url,
                    secret,
                    enabled,
                })
            }
            McpServerEvent::McpServerRemoved { .. } => self.current = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    const AT: DateTime<Utc> = DateTime::UNIX_EPOCH;

    fn register(url: &str, secret: SecretChange, enabled: bool) -> McpServerCommand {
        McpServerCommand::Register {
            url: url.into(),
            secret,
            enabled,
            at: AT,
        }
    }

    fn registered(url: &str, secret: Option<&str>, enabled: bool) -> McpServerEvent {
        McpServerEvent::McpServerRegistered {
            url: url.into(),
            secret: secret.map(Into::into),
            enabled,
            at: AT,
        }
    }

    fn updated(url: &str, secret: Option<&str>, enabled: bool) -> McpServerEvent {
        McpServerEvent::McpServerUpdated {
            url: url.into(),
            secret: secret.map(Into::into),
            enabled,
            at: AT,
        }
    }

    #[test]
    fn a_server_is_registered_then_updated_and_an_unchanged_registration_writes_nothing() {
        TestFramework::<McpServer>::with(())
            .given_no_previous_events()
            .when(register(
                "http://a/mcp",
                SecretChange::Set("s".into()),
                true,
            ))
            .then_expect_events(vec![registered("http://a/mcp", Some("s"), true)]);
        TestFramework::<McpServer>::with(())
            .given(vec![registered("http://a/mcp", Some("s"), true)])
            .when(register("http://b/mcp", SecretChange::Keep, false))
            .then_expect_events(vec![updated("http://b/mcp", Some("s"), false)]);
        TestFramework::<McpServer>::with(())
            .given(vec![registered("http://a/mcp", Some("s"), true)])
            .when(register("http://a/mcp", SecretChange::Keep, true))
            .then_expect_events(vec![]);
        TestFramework::<McpServer>::with(())
            .given(vec![registered("http://a/mcp", Some("s"), true)])
            .when(register(
                "http://a/mcp",
                SecretChange::Set("s".into()),
                true,
            ))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_kept_secret_survives_an_update_and_a_cleared_one_does_not() {
        TestFramework::<McpServer>::with(())
            .given(vec![registered("http://a/mcp", Some("s"), true)])
            .when(register("http://a/mcp", SecretChange::Clear, true))
            .then_expect_events(vec![updated("http://a/mcp", None, true)]);
        TestFramework::<McpServer>::with(())
            .given_no_previous_events()
            .when(register("http://a/mcp", SecretChange::Keep, true))
            .then_expect_events(vec![registered("http://a/mcp", None, true)]);
    }

    #[test]
    fn a_removed_server_can_be_registered_again_but_not_removed_twice() {
        TestFramework::<McpServer>::with(())
            .given(vec![registered("http://a/mcp", Some("s"), true)])
            .when(McpServerCommand::Remove { at: AT })
            .then_expect_events(vec![McpServerEvent::McpServerRemoved { at: AT }]);
        TestFramework::<McpServer>::with(())
            .given(vec![
                registered("http://a/mcp", Some("s"), true),
                McpServerEvent::McpServerRemoved { at: AT },
            ])
            .when(McpServerCommand::Remove { at: AT })
            .then_expect_error(McpServerError::NotRegistered);
        TestFramework::<McpServer>::with(())
            .given(vec![
                registered("http://a/mcp", Some("s"), true),
                McpServerEvent::McpServerRemoved { at: AT },
            ])
            .when(register("http://a/mcp", SecretChange::Keep, true))
            .then_expect_events(vec![registered("http://a/mcp", None, true)]);
        TestFramework::<McpServer>::with(())
            .given_no_previous_events()
            .when(McpServerCommand::Remove { at: AT })
            .then_expect_error(McpServerError::NotRegistered);
    }

    #[test]
    fn server_names_are_short_lowercase_words_without_dots() {
        for good in ["a", "docs", "my-server_2", &"x".repeat(32)] {
            assert!(McpServerName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Docs", "2fa", "-a", "a.b", "a b", "é", &"x".repeat(33)] {
            assert!(McpServerName::parse(bad).is_err(), "{bad}");
        }
    }
}
