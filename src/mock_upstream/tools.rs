//! Tool-call scripts: what one reply of the mock upstream says, words or tool calls.
//!
//! The mock is stateless, so a conversation's Nth answer is chosen by counting the tool-result
//! rounds the request already carries (each format's handler builds a [`ToolHistory`]): a
//! script is a list of steps and step N answers the request that carries N rounds of tool
//! results. Past the end of the script, and without a script, the answer is words.
//!
//! # Script
//! A JSON array of steps (a single object is a one-step script):
//!
//! ```json
//! [{"call": [{"name": "web_search", "arguments": {"query": "rust"}},
//!            {"name": "get_time", "arguments": {"tz": "CET"}, "id": "call_1"}]},
//!  {"text": "found: {result}"}]
//! ```
//!
//! - `call` (or `calls`): one call object or a list of them, sent as parallel calls in order;
//!   `name` is required, `arguments` is a JSON value (default `{}`, sent as its compact JSON
//!   text) or a string sent as it is (so a test can send arguments that are not JSON), `id`
//!   replaces the default id (`call_mock_{round}_{i}` for OpenAI, `toolu_mock_{round}_{i}` for
//!   Anthropic; Gemini sends an `id` only when the script gives one).
//! - `text`: words said first (before the calls, or before the `len` generated words of a text
//!   step); `{result}` stands for the first 40 characters of the last tool result. A step
//!   without `call` is a text step: the text, then `len` words `w{i} `.
//! - Unknown keys are an error (a 400), to catch typos.
//!
//! A text answer to a request that carries tool results, when the step gives no `text`, begins
//! with `result: {result}`, so a test can see that the result reached the model.
//!
//! Words are sent one per delta as `"{word} "` (the text's whitespace becomes single spaces);
//! JSON arguments are cut into token-like pieces (runs of letters and digits, with a leading
//! space, and runs of punctuation), one per delta. The engine paces pieces like words.
//!
//! # Layout
//! - [`SCRIPT_HEADER`], [`script_knob`] and the script parser;
//! - [`ToolHistory`] and the helpers the formats share to read tool results;
//! - [`Turn`] (the chosen answer), [`ToolCall`] and [`Shape`] (what the engine needs);
//! - tests of the parser, the choice of the step and the argument pieces.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Knobs, word};

/// The request header that carries a script (plain JSON, or JSON in base64), taking precedence
/// over the `script` and `tools` knobs.
pub const SCRIPT_HEADER: &str = "x-mock-script";

/// How many characters of the last tool result `{result}` stands for.
const RESULT_CHARS: usize = 40;

/// The `script=…` knob for `script` (base64url, no padding), to put into a model name:
/// `format!("mock:len=0,{}", script_knob(&json!([{"call": …}, {"text": …}])))`.
pub fn script_knob(script: &Value) -> String {
    format!("script={}", URL_SAFE_NO_PAD.encode(script.to_string()))
}

// ---- the script ----

/// The steps of a script, by tool-result round.
pub(super) type Script = Vec<ScriptStep>;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScriptStep {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, alias = "calls")]
    call: Option<OneOrMany>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(ScriptCall),
    Many(Vec<ScriptCall>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptCall {
    name: String,
    #[serde(default = "empty_object")]
    arguments: Value,
    #[serde(default)]
    id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScriptDocument {
    Steps(Vec<ScriptStep>),
    Step(ScriptStep),
}

/// Parses a script given as JSON (it starts with `[` or `{`) or as base64 of JSON (standard or
/// URL-safe alphabet, padding optional).
pub(super) fn parse_script(text: &str) -> Result<Script, String> {
    let text = text.trim();
    let json = if text.starts_with('[') || text.starts_with('{') {
        text.to_owned()
    } else {
        let unpadded = text.trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(unpadded)
            .or_else(|_| STANDARD_NO_PAD.decode(unpadded))
            .map_err(|e| format!("mock script: neither JSON nor base64 ({e})"))?;
        String::from_utf8(bytes).map_err(|_| "mock script: base64 of no UTF-8 text".to_owned())?
    };
    match serde_json::from_str::<ScriptDocument>(&json) {
        Ok(ScriptDocument::Steps(steps)) => Ok(steps),
        Ok(ScriptDocument::Step(step)) => Ok(vec![step]),
        // The untagged error says nothing; parse again as a list for a useful message.
        Err(_) => {
            serde_json::from_str::<Vec<ScriptStep>>(&json).map_err(|e| format!("mock script: {e}"))
        }
    }
}

// ---- what the request carries ----

/// What a request carries of earlier tool rounds, read by each format's handler.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ToolHistory {
    /// Tool-result rounds: runs of OpenAI `role: "tool"` messages, Anthropic user messages with
    /// `tool_result` blocks, Gemini contents with `functionResponse` parts.
    pub(super) rounds: usize,
    /// The text of the last tool result, if any.
    pub(super) last_result: Option<String>,
    /// The text of the last user message that has text (the `tools` knob's query).
    pub(super) last_user_text: String,
}

/// The text of a message content or tool-result content: a string, or the `text` of each part
/// of a list, joined by spaces.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Whitespace-separated words of `text`.
pub(super) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

// ---- the answer ----

/// One tool call of an answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    /// The script's id, if it gave one.
    id: Option<String>,
    pub(super) name: String,
    /// The arguments as sent: compact JSON, or the script's string.
    pub(super) arguments: String,
    /// The arguments as a value, for the formats that send an object (Anthropic's whole message,
    /// Gemini): parsed from `arguments`, or the string itself when it is no JSON.
    pub(super) args: Value,
    /// `arguments` cut into the pieces streamed one per delta.
    pub(super) pieces: Vec<String>,
}

/// What one reply says: a prefix of fixed words, then the `len` generated words (a text answer)
/// or the tool calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Turn {
    /// The tool-result rounds of the request (part of the default call ids).
    round: usize,
    /// Words said first, each sent as `"{word} "`.
    prefix: Vec<String>,
    pub(super) calls: Vec<ToolCall>,
}

/// What the pacing engine needs to know of a [`Turn`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Shape {
    /// Reply words (prefix and generated).
    pub(super) text_words: usize,
    /// Whether there is a run of reply words: always for a text answer (even without words),
    /// for tool calls only when a prefix comes first.
    pub(super) has_text: bool,
    /// Argument pieces of each call.
    pub(super) pieces: Vec<usize>,
}

impl Turn {
    /// The answer to a request with `knobs` and `history`: the script step of the request's
    /// round (the `script` knob or header; `tools=a+b` is the script "call each with
    /// `{"query": <last user text>}`, then words"), or words.
    pub(super) fn choose(knobs: &Knobs, history: &ToolHistory) -> Turn {
        let result: String = history
            .last_result
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(RESULT_CHARS)
            .collect();
        let step = match &knobs.script {
            Some(script) => script.get(history.rounds).cloned(),
            None if !knobs.tools.is_empty() && history.rounds == 0 => Some(ScriptStep {
                text: None,
                call: Some(OneOrMany::Many(
                    knobs
                        .tools
                        .iter()
                        .map(|name| ScriptCall {
                            name: name.clone(),
                            arguments: json!({"query": history.last_user_text}),
                            id: None,
                        })
                        .collect(),
                )),
            }),
            None => None,
        };
        let (text, calls) = match step {
            Some(ScriptStep { text, call }) => (
                text,
                match call {
                    Some(OneOrMany::One(call)) => vec![call],
                    Some(OneOrMany::Many(calls)) => calls,
                    None => Vec::new(),
                },
            ),
            None => (None, Vec::new()),
        };
        let text = match text {
            Some(text) => text.replace("{result}", &result),
            None if calls.is_empty() && history.last_result.is_some() => {
                format!("result: {result}")
            }
            None => String::new(),
        };
        Turn {
            round: history.rounds,
            prefix: text.split_whitespace().map(str::to_owned).collect(),
            calls: calls.into_iter().map(ToolCall::from_script).collect(),
        }
    }

    /// Reply words: the prefix, plus the generated words of a text answer.
    pub(super) fn text_words(&self, knobs: &Knobs) -> usize {
        self.prefix.len() + if self.calls.is_empty() { knobs.len } else { 0 }
    }

    /// Whether the reply has a run of words (see [`Shape::has_text`]).
    pub(super) fn has_text(&self, knobs: &Knobs) -> bool {
        self.calls.is_empty() || self.text_words(knobs) > 0
    }

    pub(super) fn shape(&self, knobs: &Knobs) -> Shape {
        Shape {
            text_words: self.text_words(knobs),
            has_text: self.has_text(knobs),
            pieces: self.calls.iter().map(|call| call.pieces.len()).collect(),
        }
    }

    /// Word `index` of the reasoning (`r{index} `) or of the reply (the prefix, then `w{i} `).
    pub(super) fn word(&self, index: usize, reasoning: bool) -> String {
        if reasoning {
            return word(index, true);
        }
        match self.prefix.get(index) {
            Some(prefix) => format!("{prefix} "),
            None => word(index - self.prefix.len(), false),
        }
    }

    /// The whole reply text, for a non-streaming answer.
    pub(super) fn text(&self, knobs: &Knobs) -> String {
        (0..self.text_words(knobs))
            .map(|index| self.word(index, false))
            .collect()
    }

    /// Tokens generated: reasoning words, reply words and argument pieces.
    pub(super) fn tokens(&self, knobs: &Knobs) -> usize {
        knobs.reasoning
            + self.text_words(knobs)
            + self.calls.iter().map(|c| c.pieces.len()).sum::<usize>()
    }

    /// The id of call `index`: the script's, or `{prefix}mock_{round}_{index}`.
    pub(super) fn call_id(&self, index: usize, prefix: &str) -> String {
        self.calls
            .get(index)
            .and_then(|call| call.id.clone())
            .unwrap_or_else(|| format!("{prefix}mock_{}_{index}", self.round))
    }

    /// The script's id of call `index`, if it gave one (Gemini sends no id otherwise).
    pub(super) fn script_id(&self, index: usize) -> Option<&str> {
        self.calls.get(index).and_then(|call| call.id.as_deref())
    }
}

impl ToolCall {
    fn from_script(call: ScriptCall) -> ToolCall {
        let (arguments, args) = match call.arguments {
            Value::String(text) => {
                let args = serde_json::from_str(&text).unwrap_or_else(|_| json!(text));
                (text, args)
            }
            value => (value.to_string(), value),
        };
        ToolCall {
            id: call.id,
            name: call.name,
            pieces: argument_pieces(&arguments),
            arguments,
            args,
        }
    }
}

/// Cuts `text` into token-like pieces: a run of letters, digits and `_`, or a run of other
/// characters, each with the whitespace before it (trailing whitespace is a piece of its own).
/// The pieces join to `text`.
pub(super) fn argument_pieces(text: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Word,
        Space,
        Other,
    }
    let class = |c: char| {
        if c.is_alphanumeric() || c == '_' {
            Class::Word
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    };
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_class: Option<Class> = None;
    for c in text.chars() {
        let next = class(c);
        // Whitespace leads the piece after it; other runs end where the class changes.
        let joins =
            current_class.is_none_or(|previous| previous == Class::Space || previous == next);
        if !joins {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
        current_class = Some(next);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs(spec: &str) -> Knobs {
        Knobs::from_request(&format!("mock:{spec}"), None).unwrap()
    }

    fn history(rounds: usize, last_result: Option<&str>) -> ToolHistory {
        ToolHistory {
            rounds,
            last_result: last_result.map(str::to_owned),
            last_user_text: "rust async".into(),
        }
    }

    #[test]
    fn arguments_are_cut_into_token_like_pieces_that_join_to_the_json() {
        let pieces = argument_pieces(r#"{"query":"rust async","n":10}"#);
        assert_eq!(
            pieces,
            [
                "{\"", "query", "\":\"", "rust", " async", "\",\"", "n", "\":", "10", "}"
            ]
        );
        assert_eq!(pieces.concat(), r#"{"query":"rust async","n":10}"#);
        assert_eq!(argument_pieces("{}"), ["{}"]);
        assert!(argument_pieces("").is_empty());
        let odd = "a  , é b ";
        assert_eq!(argument_pieces(odd).concat(), odd);
    }

    #[test]
    fn a_script_parses_from_json_or_base64_and_rejects_typos() {
        let script = json!([
            {"call": [{"name": "web_search", "arguments": {"query": "rust"}}]},
            {"text": "found: {result}"},
        ]);
        let plain = parse_script(&script.to_string()).unwrap();
        assert_eq!(plain.len(), 2);
        let knob = script_knob(&script);
        let encoded = knob.strip_prefix("script=").unwrap();
        assert_eq!(parse_script(encoded).unwrap(), plain);
        let standard = base64::engine::general_purpose::STANDARD.encode(script.to_string());
        assert_eq!(parse_script(&standard).unwrap(), plain);
        // One object is a one-step script; one call needs no list.
        let one = parse_script(r#"{"call": {"name": "f"}}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert!(parse_script(r#"[{"cal": []}]"#).is_err());
        assert!(parse_script(r#"[{"call": [{"arguments": {}}]}]"#).is_err());
        assert!(parse_script("not base64 !").is_err());
    }

    #[test]
    fn the_step_is_chosen_by_the_tool_result_rounds_and_text_echoes_the_result() {
        let script = json!([
            {"call": [{"name": "web_search", "arguments": {"query": "rust"}}, {"name": "t", "id": "x"}]},
            {"text": "found: {result}"},
        ]);
        let knobs = knobs(&format!("len=1,{}", script_knob(&script)));
        let first = Turn::choose(&knobs, &history(0, None));
        assert_eq!(first.calls.len(), 2);
        assert_eq!(first.calls[0].arguments, r#"{"query":"rust"}"#);
        assert_eq!(first.calls[1].arguments, "{}");
        assert_eq!(first.call_id(0, "call_"), "call_mock_0_0");
        assert_eq!(first.call_id(1, "call_"), "x");
        assert_eq!(first.script_id(0), None);
        assert_eq!(first.text(&knobs), "");
        assert!(!first.has_text(&knobs));
        // 5 pieces: {" query ":" rust "}, and one for {}.
        assert_eq!(first.tokens(&knobs), 6);

        let long = "Rust is a language empowering everyone to build reliable software";
        let second = Turn::choose(&knobs, &history(1, Some(long)));
        assert!(second.calls.is_empty());
        assert_eq!(
            second.text(&knobs),
            "found: Rust is a language empowering everyone t w0 "
        );
        // Past the end of the script: words, with the default echo.
        let third = Turn::choose(&knobs, &history(2, Some("done")));
        assert_eq!(third.text(&knobs), "result: done w0 ");
    }

    #[test]
    fn the_tools_knob_calls_each_tool_with_the_last_user_text() {
        let knobs = knobs("tools=web_search+get_time,len=0");
        let turn = Turn::choose(&knobs, &history(0, None));
        let names: Vec<&str> = turn.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web_search", "get_time"]);
        assert_eq!(turn.calls[0].arguments, r#"{"query":"rust async"}"#);
        let after = Turn::choose(&knobs, &history(1, Some("a result")));
        assert!(after.calls.is_empty());
        assert_eq!(after.text(&knobs), "result: a result ");
        // Without a script or tool results the answer is the plain words.
        let plain = Turn::choose(&super::super::Knobs::default(), &ToolHistory::default());
        assert_eq!(plain, Turn::default());
    }

    #[test]
    fn string_arguments_are_sent_as_they_are() {
        let script = json!([{"call": {"name": "f", "arguments": "{\"a\": 1"}}]);
        let knobs = knobs(&script_knob(&script));
        let turn = Turn::choose(&knobs, &ToolHistory::default());
        assert_eq!(turn.calls[0].arguments, "{\"a\": 1");
        assert_eq!(turn.calls[0].args, json!("{\"a\": 1"));
        assert_eq!(turn.calls[0].pieces.concat(), "{\"a\": 1");
    }
}
