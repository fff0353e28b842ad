//! A real MCP server for the tests, built with rmcp's server side and its Streamable HTTP
//! transport, served by hyper on a loopback port. Tools: `echo {text}` returns the text,
//! `add {a, b}` the sum, `fail {}` an `isError` result. With a token, every request must carry
//! `Authorization: Bearer <token>` (401 otherwise).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoRequest {
    /// What to say back.
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddRequest {
    a: i64,
    b: i64,
}

#[derive(Debug, Clone)]
struct TestTools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestTools {
    #[tool(description = "Say the text back")]
    fn echo(&self, Parameters(EchoRequest { text }): Parameters<EchoRequest>) -> String {
        text
    }

    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Always fails")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the fail tool failed on purpose")])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A running test MCP server; it stops when dropped.
pub struct McpTestServer {
    /// Its endpoint, `http://127.0.0.1:{port}/mcp`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for McpTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl McpTestServer {
    /// Starts a server that every client may use.
    pub async fn start() -> McpTestServer {
        Self::serve(None).await
    }

    /// Starts a server that answers only requests bearing `token`.
    pub async fn with_token(token: &str) -> McpTestServer {
        Self::serve(Some(token.to_owned())).await
    }

    async fn serve(token: Option<String>) -> McpTestServer {
        let service: StreamableHttpService<TestTools, LocalSessionManager> =
            StreamableHttpService::new(
                || {
                    Ok(TestTools {
                        tool_router: TestTools::tool_router(),
                    })
                },
                Default::default(),
                StreamableHttpServerConfig::default().with_sse_keep_alive(None),
            );
        let service = Arc::new(service);
        let expected = token.map(|t| format!("Bearer {t}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = service.clone();
                let expected = expected.clone();
                tokio::spawn(async move {
                    let handler = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let service = service.clone();
                        let expected = expected.clone();
                        async move {
                            let authorized = expected.as_deref().is_none_or(|expected| {
                                req.headers()
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    == Some(expected)
                            });
                            if !authorized {
                                let body = Full::new(Bytes::from_static(b"unauthorized")).boxed();
                                return Ok::<_, Infallible>(
                                    hyper::Response::builder().status(401).body(body).unwrap(),
                                );
                            }
                            Ok(service.handle(req).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        });
        McpTestServer {
            url: format!("http://127.0.0.1:{port}/mcp"),
            task,
        }
    }
}
