//! Tools of remote MCP (Model Context Protocol) servers, reached over the Streamable HTTP
//! transport with the official SDK (`rmcp`).
//!
//! Each registered server (`McpServer` streams, the `mcp_servers` projection) is an
//! [`McpEndpoint`]. [`McpClients`] lists its tools (`initialize`, then `tools/list` page by
//! page, within [`LIST_TIMEOUT`]) and keeps the list for [`CACHE_TTL`] on this node, so a
//! reply does not reconnect only to learn what it may offer; a changed registration (another
//! URL, secret or `updated_at`) is a new cache key. A call opens its own session
//! (`tools/call`, within [`crate::tools::TOOL_TIMEOUT`]) and turns the result into the JSON
//! the model reads.
//!
//! The name a model calls a tool by is [`wire_name`]: `server__tool`, since OpenAI's and
//! Anthropic's function names must match `^[a-zA-Z0-9_-]{1,64}$` and cannot hold the
//! `server.tool` form the chat body uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::providers::ToolSpec;

/// Longest a connection and the listing of a server's tools may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server's tool list is reused on this node.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a server that could not be listed is not asked again on this node (replies go on
/// without its tools meanwhile; the admin route always asks).
pub const DOWN_TTL: Duration = Duration::from_secs(10);
/// The longest name a model's function may have.
const WIRE_NAME_CHARS: usize = 64;

/// A registered MCP server as the client needs it.
#[derive(Clone)]
pub struct McpEndpoint {
    /// Its registered name, the prefix of its tools' names.
    pub name: String,
    /// Its Streamable HTTP endpoint (http or https).
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub secret: Option<SecretString>,
    /// When its registration last changed (microseconds): part of the cache key.
    pub updated_at: i64,
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl PartialEq for McpEndpoint {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.url == other.url && self.updated_at == other.updated_at
    }
}

impl Eq for McpEndpoint {}

/// One tool of an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpTool {
    /// The server that runs it.
    pub endpoint: Arc<McpEndpoint>,
    /// Its name on the server.
    pub tool: String,
    /// The name the model calls it by ([`wire_name`]).
    pub wire_name: String,
    pub description: String,
    /// Its `inputSchema`.
    pub schema: Value,
}

impl McpTool {
    /// The name chat bodies use: `server.tool`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.endpoint.name, self.tool)
    }

    /// Its definition as the model receives it.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.wire_name.clone(),
            description: self.description.clone(),
            parameters: self.schema.clone(),
        }
    }
}

/// `server__tool` with every character outside `[a-zA-Z0-9_-]` made `_`, cut to 64.
pub fn wire_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(WIRE_NAME_CHARS)
        .collect()
}

/// Why a server's tools could not be listed (a 502 on the admin route; no tools in a reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    #[error("the MCP server URL must be an http or https URL")]
    Scheme,
    #[error("connecting to the MCP server failed: {0}")]
    Connect(String),
    #[error("the MCP server did not answer within {0}s")]
    Timeout(u64),
    #[error("the MCP server refused to list its tools: {0}")]
    List(String),
}

/// Whether `url` is an absolute http(s) URL with a host (the only ones the client follows).
pub fn valid_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// What one node remembers of a server's tools.
struct Listed {
    url: String,
    updated_at: i64,
    at: Instant,
    tools: Result<Arc<Vec<McpTool>>, McpError>,
}

/// The MCP client of this node: lists servers' tools (cached) and calls them.
#[derive(Default)]
pub struct McpClients {
    listed: Mutex<HashMap<String, Listed>>,
}

impl McpClients {
    pub fn new() -> McpClients {
        McpClients::default()
    }

    /// The tools of `endpoint`, from this node's cache when it listed them lately.
    pub async fn tools(&self, endpoint: &McpEndpoint) -> Result<Arc<Vec<McpTool>>, McpError> {
        if let Some(cached) = self.cached(endpoint) {
            return cached;
        }
        self.list_now(endpoint).await
    }

    /// Connects now and lists the tools of `endpoint` (and remembers the answer).
    pub async fn list_now(&self, endpoint: &McpEndpoint) -> Result<Arc<Vec<McpTool>>, McpError> {
        let listed = list(endpoint).await.map(Arc::new);
        if let Ok(mut cache) = self.listed.lock() {
            cache.insert(
                endpoint.name.clone(),
                Listed {
                    url: endpoint.url.clone(),
                    updated_at: endpoint.updated_at,
                    at: Instant::now(),
                    tools: listed.clone(),
                },
            );
        }
        listed
    }

    fn cached(&self, endpoint: &McpEndpoint) -> Option<Result<Arc<Vec<McpTool>>, McpError>> {
        let cache = self.listed.lock().ok()?;
        let listed = cache.get(&endpoint.name)?;
        let ttl = if listed.tools.is_ok() {
            CACHE_TTL
        } else {
            DOWN_TTL
        };
        (listed.url == endpoint.url
            && listed.updated_at == endpoint.updated_at
            && listed.at.elapsed() < ttl)
            .then(|| listed.tools.clone())
    }

    /// Runs `tool` with `input` (a JSON object) on its server; an `Err` is the text the model
    /// reads (the server's error text for an `isError` result).
    pub async fn call(&self, tool: &McpTool, input: &Value) -> Result<Value, String> {
        let arguments = match input {
            Value::Object(map) => map.clone(),
            Value::Null => serde_json::Map::new(),
            _ => return Err("the tool's arguments must be a JSON object".into()),
        };
        let client = connect(&tool.endpoint).await.map_err(|e| e.to_string())?;
        let result = client
            .call_tool(CallToolRequestParams::new(tool.tool.clone()).with_arguments(arguments))
            .await;
        close(client);
        match result {
            Ok(result) => result_value(result),
            Err(e) => Err(format!("the MCP server failed the call: {e}")),
        }
    }
}

/// `initialize` and every page of `tools/list`, within [`LIST_TIMEOUT`].
async fn list(endpoint: &McpEndpoint) -> Result<Vec<McpTool>, McpError> {
    let run = async {
        let client = connect(endpoint).await?;
        let listed = client.list_all_tools().await;
        close(client);
        listed.map_err(|e| McpError::List(e.to_string()))
    };
    let tools = tokio::time::timeout(LIST_TIMEOUT, run)
        .await
        .map_err(|_| McpError::Timeout(LIST_TIMEOUT.as_secs()))??;
    let endpoint = Arc::new(endpoint.clone());
    let mut seen = std::collections::HashSet::new();
    Ok(tools
        .into_iter()
        .filter_map(|t| {
            let wire_name = wire_name(&endpoint.name, &t.name);
            if !seen.insert(wire_name.clone()) {
                tracing::warn!(server = %endpoint.name, tool = %t.name, "two MCP tools share the name {wire_name}; the later one is not offered");
                return None;
            }
            Some(McpTool {
                endpoint: endpoint.clone(),
                tool: t.name.into_owned(),
                wire_name,
                description: t.description.map(|d| d.into_owned()).unwrap_or_default(),
                schema: Value::Object((*t.input_schema).clone()),
            })
        })
        .collect())
}

/// An initialized session with the server.
async fn connect(
    endpoint: &McpEndpoint,
) -> Result<RunningService<RoleClient, ClientConfig>, McpError> {
    if !valid_url(&endpoint.url) {
        return Err(McpError::Scheme);
    }
    install_tls_provider();
    let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.url.as_str());
    if let Some(secret) = &endpoint.secret {
        config = config.auth_header(secret.expose_secret());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| McpError::Connect(e.to_string()))
}

/// Ends a session in the background (its `DELETE` need not delay the answer).
fn close(client: RunningService<RoleClient, ClientConfig>) {
    tokio::spawn(async move {
        let _ = client.cancel().await;
    });
}

/// rmcp's reqwest 0.13 is built without a TLS provider of its own (its default would build
/// aws-lc-rs); it uses the process's rustls provider, which is ring, as the rest of the server.
fn install_tls_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A `tools/call` result as the model reads it: the structured content when there is some,
/// else the text blocks joined (with any other blocks beside them); `isError` is an `Err`.
fn result_value(result: CallToolResult) -> Result<Value, String> {
    let mut texts = Vec::new();
    let mut others = Vec::new();
    for block in &result.content {
        match block.as_text() {
            Some(text) => texts.push(text.text.as_str()),
            None => others.push(serde_json::to_value(block).unwrap_or(Value::Null)),
        }
    }
    let text = texts.join("\n");
    if result.is_error == Some(true) {
        return Err(if text.is_empty() {
            "the tool reported an error".to_owned()
        } else {
            text
        });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    if others.is_empty() {
        Ok(Value::String(text))
    } else {
        Ok(json!({"text": text, "content": others}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    #[test]
    fn wire_names_fit_the_providers_function_name_rules() {
        assert_eq!(wire_name("docs", "search"), "docs__search");
        assert_eq!(wire_name("docs", "files.read v2"), "docs__files_read_v2");
        let long = wire_name("docs", &"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("docs__xxx"));
        assert_eq!(wire_name("a", "é"), "a___");
    }

    #[test]
    fn only_http_and_https_urls_are_followed() {
        assert!(valid_url("http://127.0.0.1:9/mcp"));
        assert!(valid_url("https://mcp.example.com/mcp"));
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "example.com/mcp",
            "http://",
            "",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
    }

    #[test]
    fn text_results_are_joined_and_error_results_are_errors() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(result_value(ok), Ok(Value::String("a\nb".into())));
        let failed = CallToolResult::error(vec![ContentBlock::text("no such file")]);
        assert_eq!(result_value(failed), Err("no such file".into()));
        let mut structured = CallToolResult::success(vec![ContentBlock::text("{\"n\":1}")]);
        structured.structured_content = Some(json!({"n": 1}));
        assert_eq!(result_value(structured), Ok(json!({"n": 1})));
    }

    #[tokio::test]
    async fn the_transport_builds_its_https_client_with_the_ring_provider() {
        // rmcp builds its reqwest client when the transport is made, and cannot without a
        // provider: this would panic if none were installed.
        install_tls_provider();
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri("https://127.0.0.1:9/mcp"),
        );
        drop(transport);
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_a_connect_error_and_is_remembered_briefly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = McpEndpoint {
            name: "down".into(),
            url: format!("http://127.0.0.1:{port}/mcp"),
            secret: None,
            updated_at: 1,
        };
        let clients = McpClients::new();
        let err = clients.tools(&endpoint).await.unwrap_err();
        assert!(matches!(err, McpError::Connect(_)), "{err:?}");
        assert!(clients.cached(&endpoint).is_some_and(|r| r.is_err()));
        let changed = McpEndpoint {
            updated_at: 2,
            ..endpoint.clone()
        };
        assert!(
            clients.cached(&changed).is_none(),
            "a new registration is asked again"
        );
    }
}
