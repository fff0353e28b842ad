//! A JSON parser that never recurses: the document becomes a flat arena of nodes.
//!
//! `serde_json` stops at 128 levels of nesting, and a LibreChat `recursive: true` export nests
//! two levels per message, so a real conversation of 70 messages would not parse. This parser
//! keeps its own stack on the heap (so depth costs memory, never the call stack), and the arena
//! drops without recursion. Parts with a bounded depth are then turned into
//! [`serde_json::Value`]s ([`Doc::pick`]) and deserialized into typed structs.
//!
//! Leniency, beyond RFC 8259: a UTF-8 byte-order mark is skipped, raw control characters inside
//! strings are accepted (the importer strips them later), and a lone UTF-16 surrogate in a `\u`
//! escape becomes U+FFFD.

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// Index of a node in a [`Doc`].
pub(crate) type Id = usize;

/// One JSON value; containers hold the ids of their members (object fields in file order).
#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<Id>),
    Obj(Vec<(String, Id)>),
}

static NULL: Node = Node::Null;

/// A parsed document; [`Doc::root`] is its top-level value.
#[derive(Debug)]
pub(crate) struct Doc {
    nodes: Vec<Node>,
    root: Id,
}

/// Deepest value [`Doc::pick`] converts: the parts it converts are single messages or headers.
const MAX_PICK_DEPTH: usize = 64;

impl Doc {
    /// Parses a whole document; the error says why and where it is not JSON.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let src = std::str::from_utf8(bytes)
            .map_err(|e| format!("not UTF-8 (at byte {})", e.valid_up_to()))?;
        Parser {
            src,
            s: src.as_bytes(),
            pos: 0,
            nodes: Vec::new(),
        }
        .document()
    }

    pub(crate) fn root(&self) -> Id {
        self.root
    }

    pub(crate) fn node(&self, id: Id) -> &Node {
        self.nodes.get(id).unwrap_or(&NULL)
    }

    /// The value of `key` in object `id` (the last one when the key repeats).
    pub(crate) fn get(&self, id: Id, key: &str) -> Option<Id> {
        match self.node(id) {
            Node::Obj(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|f| f.1),
            _ => None,
        }
    }

    pub(crate) fn str(&self, id: Id) -> Option<&str> {
        match self.node(id) {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn arr(&self, id: Id) -> Option<&[Id]> {
        match self.node(id) {
            Node::Arr(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn obj(&self, id: Id) -> Option<&[(String, Id)]> {
        match self.node(id) {
            Node::Obj(fields) => Some(fields),
            _ => None,
        }
    }

    /// The string at `key` of object `id`.
    pub(crate) fn get_str(&self, id: Id, key: &str) -> Option<&str> {
        self.get(id, key).and_then(|v| self.str(v))
    }

    /// The array at `key` of object `id`.
    pub(crate) fn get_arr(&self, id: Id, key: &str) -> Option<&[Id]> {
        self.get(id, key).and_then(|v| self.arr(v))
    }

    /// Whether object `id` has `key` (with any value, `null` included).
    pub(crate) fn has(&self, id: Id, key: &str) -> bool {
        self.get(id, key).is_some()
    }

    /// Deserializes object `id` into `T`, all of its fields but those in `skip` (large or deeply
    /// nested parts the caller walks itself). Fails on a value nested more than 64 levels.
    pub(crate) fn pick<T: DeserializeOwned>(&self, id: Id, skip: &[&str]) -> Result<T, String> {
        let value = match self.node(id) {
            Node::Obj(fields) => {
                let mut map = Map::new();
                for (key, v) in fields.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                    map.insert(key.clone(), self.value(*v, MAX_PICK_DEPTH)?);
                }
                Value::Object(map)
            }
            _ => self.value(id, MAX_PICK_DEPTH)?,
        };
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Node `id` as a `Value`, at most `depth` levels deep.
    fn value(&self, id: Id, depth: usize) -> Result<Value, String> {
        let Some(depth) = depth.checked_sub(1) else {
            return Err(format!("nested more than {MAX_PICK_DEPTH} levels deep"));
        };
        Ok(match self.node(id) {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Num(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.clone()),
            Node::Arr(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.value(*v, depth))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Obj(fields) => {
                let mut map = Map::new();
                for (key, v) in fields {
                    map.insert(key.clone(), self.value(*v, depth)?);
                }
                Value::Object(map)
            }
        })
    }
}

/// A container being filled.
enum Frame {
    Arr(Vec<Id>),
    /// The fields so far and the key of the value being parsed.
    Obj(Vec<(String, Id)>, String),
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
}

impl Parser<'_> {
    fn document(mut self) -> Result<Doc, String> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // A value starts here.
            self.skip_ws();
            let mut done = match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        self.push(Node::Obj(Vec::new()))
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Obj(Vec::new(), key));
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        self.push(Node::Arr(Vec::new()))
                    } else {
                        stack.push(Frame::Arr(Vec::new()));
                        continue;
                    }
                }
                Some(b'"') => {
                    let s = self.string()?;
                    self.push(Node::Str(s))
                }
                Some(b't') => self.literal("true", Node::Bool(true))?,
                Some(b'f') => self.literal("false", Node::Bool(false))?,
                Some(b'n') => self.literal("null", Node::Null)?,
                Some(b'-' | b'0'..=b'9') => {
                    let n = self.number()?;
                    self.push(Node::Num(n))
                }
                Some(_) => return Err(self.error("expected a value")),
                None => return Err(self.error("unexpected end of input")),
            };
            // A value ended: add it to its container, closing the containers that end with it.
            loop {
                self.skip_ws();
                match stack.last_mut() {
                    None => {
                        if self.pos < self.s.len() {
                            return Err(self.error("trailing characters"));
                        }
                        return Ok(Doc {
                            nodes: self.nodes,
                            root: done,
                        });
                    }
                    Some(Frame::Arr(items)) => {
                        items.push(done);
                        match self.next_byte() {
                            Some(b',') => break,
                            Some(b']') => {
                                let Some(Frame::Arr(items)) = stack.pop() else {
                                    return Err(self.error("parser state"));
                                };
                                done = self.push(Node::Arr(items));
                            }
                            _ => return Err(self.error("expected `,` or `]`")),
                        }
                    }
                    Some(Frame::Obj(fields, key)) => {
                        fields.push((std::mem::take(key), done));
                        match self.next_byte() {
                            Some(b',') => {
                                self.skip_ws();
                                *key = self.key()?;
                                break;
                            }
                            Some(b'}') => {
                                let Some(Frame::Obj(fields, _)) = stack.pop() else {
                                    return Err(self.error("parser state"));
                                };
                                done = self.push(Node::Obj(fields));
                            }
                            _ => return Err(self.error("expected `,` or `}`")),
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn error(&self, what: &str) -> String {
        let before = self.s.get(..self.pos).unwrap_or(self.s);
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!("{what} at line {line} column {column}")
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Id, String> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(self.push(node))
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// An object key and the `:` after it.
    fn key(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a key"));
        }
        let key = self.string()?;
        self.skip_ws();
        if self.next_byte() != Some(b':') {
            return Err(self.error("expected `:`"));
        }
        Ok(key)
    }

    /// A string; `pos` is at its opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while !matches!(self.peek(), Some(b'"' | b'\\') | None) {
                self.pos += 1;
            }
            // `"` and `\` are ASCII, so both ends are character boundaries.
            out.push_str(self.src.get(start..self.pos).unwrap_or_default());
            match self.next_byte() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next_byte() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.error("invalid escape")),
                    };
                    out.push(c);
                }
                _ => return Err(self.error("unterminated string")),
            }
        }
    }

    /// The character of a `\uXXXX` escape (and of the low surrogate after a high one).
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        if (0xD800..0xDC00).contains(&high) {
            if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                let low = self.hex4()?;
                if (0xDC00..0xE000).contains(&low) {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
                }
                // Not a low surrogate: the high one stands alone; read the next escape again.
                self.pos = save;
            }
            return Ok('\u{FFFD}');
        }
        Ok(char::from_u32(high).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| {
                u32::from_str_radix(d, 16)
                    .ok()
                    .filter(|_| !d.starts_with('+'))
            })
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(digits)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Number, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.s.get(int_start) == Some(&b'0')) {
            return Err(self.error("invalid number"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            float = true;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        if !float {
            if let Ok(n) = text.parse::<u64>() {
                return Ok(n.into());
            }
            if let Ok(n) = text.parse::<i64>() {
                return Ok(n.into());
            }
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| self.error("number out of range"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn value(s: &str) -> Value {
        let doc = Doc::parse(s.as_bytes()).unwrap();
        doc.value(doc.root(), 64).unwrap()
    }

    #[test]
    fn agrees_with_serde_json_on_ordinary_documents() {
        for s in [
            r#"{"a": [1, -2, 3.5, 1e3, true, false, null, "x\"y\\z\/\u00e9\ud83d\ude00"], "b": {}}"#,
            "[]",
            " [ [ ] , { } ] ",
            "18446744073709551615",
            "-9223372036854775808",
            "123456789012345678901234567890",
            r#""tab\tnl\n""#,
        ] {
            let expected: Value = serde_json::from_str(s).unwrap();
            assert_eq!(value(s), expected, "{s}");
        }
    }

    #[test]
    fn rejects_what_is_not_json() {
        for s in [
            "",
            " ",
            "{",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "[1]x",
            "{} {}",
            "NaN",
            "1e999",
            "'a'",
        ] {
            assert!(Doc::parse(s.as_bytes()).is_err(), "{s:?} parsed");
        }
        assert!(Doc::parse(b"\xff\xfe[]").is_err());
    }

    #[test]
    fn is_lenient_with_bom_raw_controls_and_lone_surrogates() {
        assert_eq!(value("\u{feff}[1]"), serde_json::json!([1]));
        assert_eq!(value("\"a\u{1}b\nc\""), Value::String("a\u{1}b\nc".into()));
        assert_eq!(value(r#""\ud800x""#), Value::String("\u{fffd}x".into()));
        assert_eq!(
            value(r#""\ud800\u0041""#),
            Value::String("\u{fffd}A".into())
        );
        assert_eq!(value(r#""\udc00""#), Value::String("\u{fffd}".into()));
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let depth = 1_000_000;
        let s = "[".repeat(depth) + &"]".repeat(depth);
        let doc = Doc::parse(s.as_bytes()).unwrap();
        assert!(doc.arr(doc.root()).is_some());
        assert!(doc.value(doc.root(), 64).is_err());
        let unclosed = "{\"a\":".repeat(depth);
        assert!(Doc::parse(unclosed.as_bytes()).is_err());
    }

    #[test]
    fn repeated_keys_read_the_last_value() {
        let doc = Doc::parse(br#"{"a": 1, "a": "two"}"#).unwrap();
        assert_eq!(doc.get_str(doc.root(), "a"), Some("two"));
    }

    #[test]
    fn errors_name_the_place() {
        let err = Doc::parse(b"[1,\n  2,\n  x]").unwrap_err();
        assert_eq!(err, "expected a value at line 3 column 3");
    }
}
