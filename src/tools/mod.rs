//! Tools that reach outside Threadline for a model or a user.
//!
//! A reply that may call tools carries a [`ToolRunner`]: the tools offered to the model (their
//! [`ToolSpec`]s go out in each provider's format) and what runs them. The reply's writer
//! (`chat::writer`) runs the loop; the runner (`services::tools::Toolbox`, which knows the
//! caller whose meters the tools spend) answers "run tool `name` with this input".
//!
//! # Layout
//! - [`Tool`], the built-in tools' definitions, [`ToolRunner`] and [`read_site`] (here);
//! - [`fetch`]: the guarded web fetch (SSRF checks, size, time and redirect limits) behind the
//!   `read_site` tool and file-by-URL attachments;
//! - [`readable`]: the readable text of what was fetched (HTML main content, plain text, PDF);
//! - [`search`]: the [`search::SearchApi`] trait, and [`exa`], its Exa implementation;
//! - [`research`]: the bounded research loop behind `tool: "research"`;
//! - [`mcp`]: remote MCP servers' tools (listing, cached per node, and calls).

pub mod exa;
pub mod fetch;
pub mod mcp;
pub mod readable;
pub mod research;
pub mod search;

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::providers::ToolSpec;

/// Results one `web_search` call returns to the model.
pub const SEARCH_RESULTS: u32 = 5;
/// Characters of a page `read_site` returns to the model.
pub const READ_SITE_CHARS: usize = 20_000;
/// Longest any one tool call may run.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// A tool a model may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// `web_search {query}`: the configured search API; one `web_searches` credit per call.
    WebSearch,
    /// `read_site {url}`: the readable text of a web page, through the guarded fetcher.
    ReadSite,
    /// A tool of a registered MCP server, called `server__tool` by the model.
    Mcp(mcp::McpTool),
}

impl Tool {
    /// The built-in tools, in the order they are offered.
    pub const BUILT_IN: [Tool; 2] = [Tool::WebSearch, Tool::ReadSite];

    /// The name the model calls it by.
    pub fn name(&self) -> &str {
        match self {
            Tool::WebSearch => "web_search",
            Tool::ReadSite => "read_site",
            Tool::Mcp(tool) => &tool.wire_name,
        }
    }

    /// The tool named `name`, if it is a built-in one.
    pub fn parse(name: &str) -> Option<Tool> {
        Tool::BUILT_IN.into_iter().find(|t| t.name() == name)
    }

    /// Its definition as the model receives it.
    pub fn spec(&self) -> ToolSpec {
        match self {
            Tool::WebSearch => ToolSpec {
                name: self.name().into(),
                description: "Search the web. Returns the title, URL, published date and a \
                              summary of each result. Use it for recent events and facts you \
                              are not sure of; cite the URLs you use."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "What to search for"}},
                    "required": ["query"],
                }),
            },
            Tool::ReadSite => ToolSpec {
                name: self.name().into(),
                description: "Read a web page (HTML, plain text or PDF) and return its main \
                              text, without navigation."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"url": {"type": "string", "description": "An http(s) URL"}},
                    "required": ["url"],
                }),
            },
            Tool::Mcp(tool) => tool.spec(),
        }
    }
}

/// What runs one reply's tools.
pub trait ToolRunner: Send + Sync {
    /// The definitions sent to the model (none: the model is offered no tool).
    fn specs(&self) -> Vec<ToolSpec>;

    /// Runs call `call_id` of tool `name` with `input`; an `Err` is the text the model
    /// receives as the failed call's result. Never longer than [`TOOL_TIMEOUT`].
    fn call<'a>(
        &'a self,
        call_id: &'a str,
        name: &'a str,
        input: &'a Value,
    ) -> BoxFuture<'a, Result<Value, String>>;

    /// One web search that spends no `web_searches` credit (the chosen search and research
    /// runs are paid once, when the message is sent).
    fn search<'a>(
        &'a self,
        query: &'a str,
        results: u32,
        text_chars: u32,
    ) -> BoxFuture<'a, Result<Vec<search::SearchResult>, String>>;
}

/// `read_site {url}`: the page through the guarded fetcher, as `{url, title, text, truncated}`
/// (the text read off the thread pool that serves requests).
pub async fn read_site(fetcher: &fetch::Fetcher, input: &Value) -> Result<Value, String> {
    let url = string_argument(input, "url")?;
    let fetched = fetcher.fetch(&url).await.map_err(|e| e.to_string())?;
    let final_url = fetched.final_url.to_string();
    let readable = tokio::task::spawn_blocking(move || {
        readable::readable_text_capped(&fetched.media_type, &fetched.bytes, READ_SITE_CHARS)
    })
    .await
    .map_err(|e| format!("reading the page failed: {e}"))?
    .map_err(|e| e.to_string())?;
    Ok(json!({
        "url": final_url,
        "title": readable.title,
        "text": readable.text,
        "truncated": readable.truncated,
    }))
}

/// The string argument `key` of a call's input.
pub fn string_argument(input: &Value, key: &str) -> Result<String, String> {
    match input.get(key).and_then(Value::as_str).map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(format!(
            "the call needs a non-empty string argument {key:?}"
        )),
    }
}

/// Why a tool was refused before anything ran (a 422 for the chat body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolChoiceError {
    #[error(
        "unknown tool {0:?}: the tools are web_search, read_site and the MCP servers' \
         tools as server.tool"
    )]
    Unknown(String),
    #[error("unknown tool {0:?}: no enabled MCP server is registered as {1:?}")]
    UnknownServer(String, String),
    #[error("the tool {0:?} is not available on this server (no search API is configured)")]
    Unavailable(String),
}

/// The built-in tools named (`None`: every available one) that a server with (or without) a
/// search API can run. Naming a built-in tool that does not exist, or one the server cannot
/// run, is an error; `server.tool` names are left to [`mcp`] (see [`mcp_name`]).
pub fn choose(has_search: bool, names: Option<&[String]>) -> Result<Vec<Tool>, ToolChoiceError> {
    let available = |t: &Tool| *t != Tool::WebSearch || has_search;
    match names {
        None => Ok(Tool::BUILT_IN.into_iter().filter(available).collect()),
        Some(names) => {
            let mut tools = Vec::new();
            for name in names.iter().filter(|n| mcp_name(n).is_none()) {
                let tool =
                    Tool::parse(name).ok_or_else(|| ToolChoiceError::Unknown(name.clone()))?;
                if !available(&tool) {
                    return Err(ToolChoiceError::Unavailable(name.clone()));
                }
                if !tools.contains(&tool) {
                    tools.push(tool);
                }
            }
            Ok(tools)
        }
    }
}

/// `(server, tool)` of a `server.tool` name of the chat body (an MCP server's tool).
pub fn mcp_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('.')
        .filter(|(server, tool)| !server.is_empty() && !tool.is_empty())
}
