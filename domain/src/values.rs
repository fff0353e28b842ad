//! Value types parsed at the edge: once constructed they hold only valid values.
//!
//! One rule per kind of field:
//! - **identifiers** (thread ids, message ids): 1–N characters of `[A-Za-z0-9_-]`;
//! - **email addresses**: trimmed, lower-cased, no whitespace, control or invisible
//!   characters (zero-width spaces, joiners, direction marks: see [`is_invisible`]);
//! - **one-line text** (titles, names, nicknames, key names, themes): trimmed, no control
//!   characters ([`check_line`]);
//! - **prose** (messages, biographies, instructions): no control characters but tab, line
//!   feed and carriage return ([`check_prose`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value could not be parsed; the message is safe to show to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Identifier of an account (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Uuid);

impl AccountId {
    /// A fresh, time-ordered account id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the textual form of an account id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidValue("account id must be a UUID".into()))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifier of a login session (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    /// A fresh, time-ordered session id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the textual form of a session id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidValue("session id must be a UUID".into()))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether `c` is a control character that one-line text may not hold.
fn is_control(c: char) -> bool {
    c.is_control()
}

/// Whether `c` draws nothing (Unicode's default-ignorable code points and bidirectional
/// controls): text built with them looks like other text (`admin\u{200b}@example.com`).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// One-line text: no control characters.
pub fn check_line(s: &str) -> Result<(), InvalidValue> {
    if s.chars().any(is_control) {
        return Err(InvalidValue("must not contain control characters".into()));
    }
    Ok(())
}

/// Prose: no control characters but tab, line feed and carriage return.
pub fn check_prose(s: &str) -> Result<(), InvalidValue> {
    if s.chars()
        .any(|c| is_control(c) && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(InvalidValue(
            "must not contain control characters other than tabs and line breaks".into(),
        ));
    }
    Ok(())
}

/// Whether `s` is 1–`max` characters of `[A-Za-z0-9_-]`.
fn is_identifier(s: &str, max: usize) -> bool {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    !s.is_empty() && s.len() <= max && s.chars().all(valid_char)
}

/// Identifier of a message: 1–128 characters of `[A-Za-z0-9_-]`, chosen by the client (the AI
/// SDK generates them) or by the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// Longest id a client may choose.
    pub const MAX_LEN: usize = 128;

    /// Parses a client-chosen message id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if !is_identifier(s, Self::MAX_LEN) {
            return Err(InvalidValue(
                "message ids are 1-128 characters of A-Z, a-z, 0-9, '_' or '-'".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Identifier of a thread: 1–64 characters of `[A-Za-z0-9_-]`, chosen by the client or generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThreadId(String);

impl ThreadId {
    /// Longest id a client may choose.
    pub const MAX_LEN: usize = 64;

    /// A fresh thread id (a UUID v7 in its hyphenated form, which fits the alphabet).
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    /// Parses a client-chosen id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if !is_identifier(s, Self::MAX_LEN) {
            return Err(InvalidValue(
                "thread id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased so that one mailbox has one spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises an address. The check is deliberately modest (one `@`, a dot in the
    /// domain, no spaces): the only real proof of an address is mail that arrives.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim().to_lowercase();
        let invalid = || InvalidValue("email must look like name@example.com".into());
        if s.len() > Self::MAX_LEN
            || s.chars()
                .any(|c| c.is_whitespace() || is_control(c) || is_invisible(c))
        {
            return Err(invalid());
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(invalid());
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Self(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A thread title: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Title(String);

impl Title {
    /// Longest title in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a title given by a user or a model.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidValue("title must not be empty".into()));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue(format!(
                "title must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if check_line(s).is_err() {
            return Err(InvalidValue(
                "title must not contain control characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest name in characters.
    pub const MAX_CHARS: usize = 100;

    /// Parses a display name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS || check_line(s).is_err() {
            return Err(InvalidValue(format!(
                "name must be 1-{} characters without control characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_id_of_letters_digits_dash_and_underscore_is_accepted() {
        assert!(ThreadId::parse("abc-DEF_123").is_ok());
        assert!(ThreadId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn an_empty_long_or_odd_thread_id_is_rejected() {
        assert!(ThreadId::parse("").is_err());
        assert!(ThreadId::parse(&"a".repeat(65)).is_err());
        assert!(ThreadId::parse("a b").is_err());
        assert!(ThreadId::parse("a/b").is_err());
        assert!(ThreadId::parse("é").is_err());
    }

    #[test]
    fn a_generated_thread_id_parses() {
        let id = ThreadId::generate();
        assert_eq!(ThreadId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn a_message_id_is_an_identifier() {
        assert!(MessageId::parse("msg-01a2_XyZ").is_ok());
        assert!(MessageId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "../../x\u{0}", "a b", "a/b", "a.b", &"a".repeat(129)] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn look_alike_and_control_characters_are_refused_in_emails() {
        for bad in [
            "x\u{0}@example.com",
            "admin\u{200b}@example.com",
            "admin\u{202e}@example.com",
            "ad\u{feff}min@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prose_keeps_tabs_and_line_breaks_but_no_other_controls() {
        assert!(check_prose("a\tb\r\nc").is_ok());
        assert!(check_prose("a\u{0}b").is_err());
        assert!(check_prose("a\u{1b}[31m").is_err());
        assert!(check_line("a\nb").is_err());
        assert!(
            check_line("family 👨\u{200d}👩\u{200d}👧").is_ok(),
            "joiners draw emoji"
        );
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").map(|e| e.as_str().to_owned()),
            Ok("ada@example.com".to_owned())
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@c.d",
            "a@b@c.d",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_title_longer_than_200_characters_is_rejected() {
        assert!(Title::parse(&"x".repeat(200)).is_ok());
        assert!(Title::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn a_blank_title_or_one_with_control_characters_is_rejected() {
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse("a\u{0}b").is_err());
        assert_eq!(
            Title::parse("  Hi  ").map(|t| t.as_str().to_owned()),
            Ok("Hi".into())
        );
    }
}
