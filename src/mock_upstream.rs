//! A mock upstream for tests, benchmarks and local runs without API keys: it speaks the OpenAI
//! Chat Completions, Anthropic Messages (`POST /v1/messages`, [`anthropic`]) and Gemini
//! (`POST /v1beta/models/{model}:streamGenerateContent`, [`gemini`]) stream formats, all with
//! the same knobs.
//!
//! It serves `POST /v1/chat/completions` over real HTTP and speaks the Chat Completions stream
//! format exactly (`data: {json}\n\n` chunks, a role chunk, one word per content chunk, a
//! finishing chunk with `delta: {}`, the usage-only chunk with `choices: []` when the request set
//! `stream_options.include_usage`, then `data: [DONE]`). Non-streaming requests get a
//! `chat.completion` object. `GET /v1/models` lists the one model, `mock`.
//!
//! The reply is deterministic: word `i` is `w{i}` followed by a space (`w0 w1 w2 ` for three
//! words), reasoning word `i` is `r{i} `. `prompt_tokens` is the number of whitespace-separated
//! words in all request messages (tool results included: OpenAI `role: "tool"` contents,
//! Anthropic `tool_result` contents, Gemini `functionResponse` texts), `completion_tokens` the
//! number of words generated (reasoning included, as OpenAI counts them) plus the tool-call
//! argument pieces sent, `reasoning_tokens` the reasoning words. The `cached=N` knob reports N
//! prompt tokens as read from cache, in each format's own way.
//!
//! # Knobs
//! Set through the model name, `mock` or `mock:key=value,key=value`, and overridden per request
//! by an `x-mock: key=value,…` header. Unknown keys and bad values get a 400.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `len` | words in the reply | 20 |
//! | `tps` | words per second, fractions allowed; 0 = as fast as possible | 0 |
//! | `ttft_ms` | delay before the first word (after the role chunk) | 0 |
//! | `reasoning` | reasoning words sent first as `delta.reasoning_content`, `content: null` | 0 |
//! | `keepalive` | send a `: keep-alive` comment before the first chunk (`keepalive` alone = 1) | 0 |
//! | `status` | answer this HTTP status with an OpenAI-style error body instead | – |
//! | `retry_after` | with `status`: a `retry-after` header, in seconds | – |
//! | `error_after` | after N words send `data: {"error":{…}}` and end | – |
//! | `stall_after` | after N words pause for `stall_ms`, then go on | – |
//! | `stall_ms` | length of the stall | 60000 |
//! | `drop_after` | after N words cut the connection (no `[DONE]`, no chunked terminator) | – |
//! | `tools` | `tools=a+b`: call these tools (`{"query": <last user text>}`), then words | – |
//! | `script` | a tool-call script in base64 (see below; [`script_knob`] builds it) | – |
//!
//! Word counts in `*_after` include the reasoning words (they come first) and the tool-call
//! argument pieces (they come last). The stream-only knobs are ignored for non-streaming
//! requests, which wait `ttft_ms` plus the pacing time, then answer.
//!
//! # Tool calls
//! A script (the `x-mock-script` header, [`SCRIPT_HEADER`], in JSON or base64, over the
//! `script` knob, over the `tools` knob) makes the mock answer with tool calls, streamed as each
//! provider does: OpenAI `delta.tool_calls` (id, name and `arguments: ""` first, then the
//! arguments in pieces, `finish_reason: "tool_calls"`), Anthropic `tool_use` blocks with
//! `input_json_delta` pieces (`stop_reason: "tool_use"`), Gemini `functionCall` parts in one
//! chunk with `finishReason: "STOP"`. The mock is stateless: step N of the script answers a
//! request that carries N tool-result rounds; a text answer to a request with tool results
//! starts with `result: <first 40 characters of the last result>`. The script format is
//! described in `src/mock_upstream/tools.rs`.
//!
//! # Recording and Exa
//! [`MockUpstream::recorded`] returns the last [`RECORDED_REQUESTS`] requests to the chat routes
//! and to `POST /search`, a mock of Exa's search API ([`exa`]).
//!
//! # Engine
//! One pacing engine serves the three formats: `steps` turns the knobs and the chosen `Turn`
//! into a sequence of wire-neutral `Step`s (keep-alive, open, stall, a run of words begins, a
//! word, a tool call begins, an argument piece, a call ends, error, drop, done) and does all the
//! waiting; each format is a `WireFormat` that only renders steps into its own frames, and
//! `event_stream` joins the two into the streamed response.
//!
//! # Layout
//! - [`MockUpstream`] (start on any port, stop, request counter, recorded requests) and [`run`]
//!   for the CLI;
//! - the OpenAI handlers and error body;
//! - the knob parser, `Knobs`, shared by every route;
//! - the pacing engine: `Step`, `steps`, `WireFormat`, `event_stream`;
//! - the Chat Completions reply, the OpenAI `WireFormat`;
//! - tests of the engine, and tests that drive it through [`crate::providers::openai`];
//! - [`anthropic`] and [`gemini`]: the other two formats' handlers and `WireFormat`s;
//! - `tools`: scripts and the chosen answer (`Turn`); `record`: the request log;
//! - [`exa`], [`billing`] and [`identity`]: mocks of the search, payment and identity providers.

use std::any::Any;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Extensions, Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod anthropic;
pub mod billing;
pub mod exa;
mod gemini;
pub mod identity;
mod record;
mod tools;

pub use record::{RECORDED_REQUESTS, RecordedRequest};
pub use tools::{SCRIPT_HEADER, script_knob};

use record::Recorder;
use tools::{Shape, ToolHistory, Turn, content_text};

/// The request header that overrides the knobs of the model name.
pub const KNOB_HEADER: &str = "x-mock";

/// A mock upstream running in the background (for tests and benchmarks).
pub struct MockUpstream {
    port: u16,
    handle: ServerHandle,
    task: JoinHandle<io::Result<()>>,
    requests: Arc<AtomicUsize>,
    recorder: Arc<Recorder>,
}

impl MockUpstream {
    /// Binds `bind` (port 0 picks a free port) and serves on one worker thread until
    /// [`MockUpstream::stop`] or drop. Signals are left to the host process.
    pub async fn start(bind: &str) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind(bind)?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicUsize::new(0));
        let recorder = Arc::new(Recorder::new(RECORDED_REQUESTS));
        let server = build_server(
            listener,
            Arc::clone(&requests),
            Arc::clone(&recorder),
            1,
            false,
        )?;
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(MockUpstream {
            port,
            handle,
            task,
            requests,
            recorder,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The API root to configure a provider with: `http://127.0.0.1:{port}/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// How many chat requests arrived so far, in any of the three formats (including those
    /// answered with an error status), to check retry attempts.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The last [`RECORDED_REQUESTS`] requests to the chat routes (any format, error answers
    /// included) and to Exa's `/search`, oldest first, with their parsed JSON bodies.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorder.all()
    }

    /// The last recorded request whose path ends with `path_suffix` (`"/chat/completions"`,
    /// `"/messages"`, `":streamGenerateContent"`, `"/search"`; `""` for any).
    pub fn last_recorded(&self, path_suffix: &str) -> Option<RecordedRequest> {
        self.recorder
            .all()
            .into_iter()
            .rev()
            .find(|request| request.path.ends_with(path_suffix))
    }

    /// Forgets the recorded requests (the request counter stays).
    pub fn clear_recorded(&self) {
        self.recorder.clear();
    }

    /// Stops the server at once, closing open streams, and waits until it has stopped.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the returned future only waits.
        std::mem::drop(self.handle.stop(false));
    }
}

/// Serves on `bind` with two workers until Ctrl-C / SIGTERM (for `threadline mock-upstream`).
pub async fn run(bind: &str) -> io::Result<()> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    // Nothing reads the log of a CLI mock: record nothing.
    let recorder = Arc::new(Recorder::new(0));
    let server = build_server(listener, Arc::new(AtomicUsize::new(0)), recorder, 2, true)?;
    tracing::info!(%addr, "mock upstream listening on http://{addr}/v1");
    server.await
}

fn build_server(
    listener: TcpListener,
    requests: Arc<AtomicUsize>,
    recorder: Arc<Recorder>,
    workers: usize,
    signals: bool,
) -> io::Result<Server> {
    let counter = web::Data::from(requests);
    let recorder = web::Data::from(recorder);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(counter.clone())
            .app_data(recorder.clone())
            .route("/v1/chat/completions", web::post().to(chat_completions))
            .route("/v1/messages", web::post().to(anthropic::messages))
            .route(
                "/v1beta/models/{model_action}",
                web::post().to(gemini::models_action),
            )
            .route("/v1/models", web::get().to(models))
            .configure(exa::routes)
            .configure(billing::routes)
            .configure(identity::routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // Stalled streams must not hold a Ctrl-C for long.
    .shutdown_timeout(1)
    .on_connect(set_nodelay);
    let server = if signals {
        server
    } else {
        server.disable_signals()
    };
    Ok(server.listen(listener)?.run())
}

/// One small write per word: without this, Nagle's algorithm holds words back on loopback.
pub fn set_nodelay(connection: &dyn Any, _: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

// ---- handlers ----

async fn chat_completions(
    request: HttpRequest,
    body: Bytes,
    counter: web::Data<AtomicUsize>,
    recorder: web::Data<Recorder>,
) -> HttpResponse {
    let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed = match parse_recorded::<MockRequest>(&request, &body, &recorder) {
        Ok(parsed) => parsed,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let knobs = match Knobs::from_http(&parsed.model, &request) {
        Ok(knobs) => knobs,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    if let Some(status) = knobs.status.filter(|s| !s.is_success()) {
        let mut response =
            error_response(status, &format!("mock error (HTTP {})", status.as_u16()));
        set_retry_after(&mut response, knobs.retry_after);
        return response;
    }
    let reply = Reply {
        id: format!("chatcmpl-mock{number}"),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: parsed.model.clone(),
        prompt_tokens: parsed.messages.iter().map(MockMessage::word_count).sum(),
        include_usage: parsed
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        turn: Turn::choose(&knobs, &openai_tool_history(&parsed.messages)),
        knobs,
    };
    if parsed.stream.unwrap_or(false) {
        event_stream(reply)
    } else {
        reply.knobs.wait_whole_reply(&reply.turn).await;
        HttpResponse::Ok().json(reply.completion())
    }
}

/// Parses a chat request body as JSON, records it, then reads it as `T`; the error is the
/// message of a 400. Recording keeps the `Value` parsed here, so the body is parsed once.
fn parse_recorded<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
    body: &[u8],
    recorder: &Recorder,
) -> Result<T, String> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => {
            recorder.record(request, Value::Null);
            return Err(format!("invalid body: {e}"));
        }
    };
    let parsed = T::deserialize(&value).map_err(|e| format!("invalid body: {e}"));
    recorder.record(request, value);
    parsed
}

async fn models() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "threadline"}],
    }))
}

async fn not_found() -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "no such route on the mock upstream")
}

/// An OpenAI-style error: `{"error":{"message","type","param","code"}}`.
fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    let (kind, code) = match status.as_u16() {
        429 => ("requests", "rate_limit_exceeded"),
        401 => ("invalid_request_error", "invalid_api_key"),
        404 => ("invalid_request_error", "not_found"),
        s if s >= 500 => ("server_error", "server_error"),
        _ => ("invalid_request_error", "invalid_request"),
    };
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    }))
}

/// The `retry_after` knob as a `retry-after` header (the OpenAI and Anthropic routes).
fn set_retry_after(response: &mut HttpResponse, seconds: Option<u64>) {
    if let Some(seconds) = seconds
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
}

// ---- knobs ----

/// The behaviour asked for by one request.
#[derive(Debug, Clone, PartialEq)]
struct Knobs {
    len: usize,
    tps: f64,
    ttft: Duration,
    status: Option<StatusCode>,
    retry_after: Option<u64>,
    error_after: Option<usize>,
    stall_after: Option<usize>,
    stall: Duration,
    drop_after: Option<usize>,
    reasoning: usize,
    /// Prompt tokens reported as read from the provider's cache, each in its format: inside
    /// `prompt_tokens` for OpenAI and `promptTokenCount` for Gemini, beside `input_tokens`
    /// (`cache_read_input_tokens`) for Anthropic.
    cached: usize,
    keepalive: bool,
    /// `tools=a+b`: the tools called when the request carries no tool results yet.
    tools: Vec<String>,
    /// The `script` knob or the `x-mock-script` header, parsed.
    script: Option<tools::Script>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            len: 20,
            tps: 0.0,
            ttft: Duration::ZERO,
            status: None,
            retry_after: None,
            error_after: None,
            stall_after: None,
            stall: Duration::from_millis(60_000),
            drop_after: None,
            reasoning: 0,
            cached: 0,
            keepalive: false,
            tools: Vec::new(),
            script: None,
        }
    }
}

impl Knobs {
    /// Knobs from the model name, then the request's `x-mock` header on top, then its
    /// `x-mock-script` header over any `script` or `tools` knob (every chat route).
    fn from_http(model: &str, request: &HttpRequest) -> Result<Self, String> {
        let header = request
            .headers()
            .get(KNOB_HEADER)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let mut knobs = Self::from_request(model, header)?;
        if let Some(script) = request.headers().get(SCRIPT_HEADER) {
            knobs.script = Some(tools::parse_script(&String::from_utf8_lossy(
                script.as_bytes(),
            ))?);
        }
        Ok(knobs)
    }

    /// Knobs from the model name (`mock:len=3`), then the `x-mock` header on top.
    fn from_request(model: &str, header: Option<&str>) -> Result<Self, String> {
        let mut knobs = Knobs::default();
        if let Some((_, spec)) = model.split_once(':').filter(|(name, _)| *name == "mock") {
            knobs.apply(spec)?;
        }
        if let Some(spec) = header {
            knobs.apply(spec)?;
        }
        Ok(knobs)
    }

    /// Applies `key=value,key=value` (spaces around items allowed, empty items skipped).
    fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            let number = || -> Result<u64, String> {
                value
                    .ok_or_else(|| format!("mock knob `{key}` needs a value"))?
                    .parse::<u64>()
                    .map_err(|_| format!("mock knob `{key}`: not a whole number"))
            };
            let count = || number().and_then(|n| usize::try_from(n).map_err(|e| e.to_string()));
            match key {
                "len" => self.len = count()?,
                "tps" => {
                    self.tps = value
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .ok_or_else(|| "mock knob `tps`: not a number ≥ 0".to_owned())?;
                }
                "ttft_ms" => self.ttft = Duration::from_millis(number()?),
                "status" => {
                    let code = u16::try_from(number()?).map_err(|e| e.to_string())?;
                    self.status = Some(
                        StatusCode::from_u16(code)
                            .map_err(|_| format!("mock knob `status`: {code} is no status"))?,
                    );
                }
                "retry_after" => self.retry_after = Some(number()?),
                "error_after" => self.error_after = Some(count()?),
                "stall_after" => self.stall_after = Some(count()?),
                "stall_ms" => self.stall = Duration::from_millis(number()?),
                "drop_after" => self.drop_after = Some(count()?),
                "reasoning" => self.reasoning = count()?,
                "cached" => self.cached = count()?,
                "keepalive" => self.keepalive = value.is_none_or(|v| !matches!(v, "0" | "false")),
                "tools" => {
                    self.tools = value
                        .unwrap_or_default()
                        .split('+')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if self.tools.is_empty() {
                        return Err("mock knob `tools` needs a tool name".to_owned());
                    }
                }
                "script" => {
                    let text =
                        value.ok_or_else(|| "mock knob `script` needs a value".to_owned())?;
                    self.script = Some(tools::parse_script(text)?);
                }
                _ => return Err(format!("unknown mock knob `{key}`")),
            }
        }
        Ok(())
    }
}

// ---- the pacing engine ----

/// One step of a streamed reply, whatever the wire format: [`steps`] yields them in order and
/// does all the waiting, a [`WireFormat`] renders each into its frames (often none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `keepalive`: comes before anything else.
    KeepAlive,
    /// The stream opens, before the `ttft_ms` wait (OpenAI's role chunk, Anthropic's
    /// `message_start` and `ping`).
    Open,
    /// `stall_after` words are out; the engine waits `stall_ms` after this step.
    Stall,
    /// A run of words begins, before its first word's `tps` wait: the reasoning words (only when
    /// there are any), then the reply words (always for a text answer, even with `len=0`; before
    /// tool calls only when the script gives them a text).
    Begin { reasoning: bool },
    /// Word `index` of the reasoning (`r{index} `) or of the reply (the script's text, then
    /// `w{i} `), see [`Turn::word`].
    Word { index: usize, reasoning: bool },
    /// Tool call `call` begins (its id and name), after the words.
    CallBegin { call: usize },
    /// Piece `piece` of the JSON arguments of tool call `call`; paced and counted like a word.
    Piece { call: usize, piece: usize },
    /// Every piece of tool call `call` is out.
    CallEnd { call: usize },
    /// `error_after` words are out: an error in the stream, the last step.
    Error,
    /// `drop_after` words are out: cut the connection, the last step. [`event_stream`] handles
    /// it; no format renders it.
    Drop,
    /// Everything is out: the closing frames, the last step.
    Done,
}

impl Step {
    /// Whether the step sends a token (a word or an argument piece): the pacing and the
    /// `*_after` knobs count these.
    fn is_token(self) -> bool {
        matches!(self, Step::Word { .. } | Step::Piece { .. })
    }
}

/// The steps after [`Step::Open`], without waits or interruptions: the reasoning run, the reply
/// run, each tool call, [`Step::Done`].
fn reply_steps(reasoning: usize, shape: Shape) -> impl Iterator<Item = Step> + 'static {
    let reasoning_run = (reasoning > 0)
        .then_some(Step::Begin { reasoning: true })
        .into_iter()
        .chain((0..reasoning).map(|index| Step::Word {
            index,
            reasoning: true,
        }));
    let reply_run = shape
        .has_text
        .then_some(Step::Begin { reasoning: false })
        .into_iter()
        .chain((0..shape.text_words).map(|index| Step::Word {
            index,
            reasoning: false,
        }));
    let calls = shape
        .pieces
        .into_iter()
        .enumerate()
        .flat_map(|(call, pieces)| {
            std::iter::once(Step::CallBegin { call })
                .chain((0..pieces).map(move |piece| Step::Piece { call, piece }))
                .chain(std::iter::once(Step::CallEnd { call }))
        });
    reasoning_run
        .chain(reply_run)
        .chain(calls)
        .chain(std::iter::once(Step::Done))
}

/// The steps of one streamed reply with `knobs` and the answer's `shape`, with the waits between
/// them: `ttft_ms` after [`Step::Open`]; then the tokens (words and argument pieces), the first
/// at once and each further one `1/tps` after the one before, on a fixed schedule (time spent
/// rendering does not slow it down; a stall pushes it back); `stall_ms` after [`Step::Stall`].
///
/// After `n` tokens (reasoning words come first, argument pieces last), before whatever comes
/// next (a run's [`Step::Begin`], the next token, a call's start or end, [`Step::Done`]), the
/// `*_after` knobs equal to `n` apply in this order: `error_after` (then the end), `drop_after`
/// (then the end), `stall_after`.
fn steps(knobs: Knobs, shape: Shape) -> impl Stream<Item = Step> + 'static {
    async_stream::stream! {
        if knobs.keepalive {
            yield Step::KeepAlive;
        }
        yield Step::Open;
        if !knobs.ttft.is_zero() {
            tokio::time::sleep(knobs.ttft).await;
        }
        let period = knobs.word_period();
        let mut next = Instant::now();
        let mut sent = 0;
        let mut checked = None;
        for step in reply_steps(knobs.reasoning, shape) {
            if checked != Some(sent) {
                checked = Some(sent);
                if knobs.error_after == Some(sent) {
                    yield Step::Error;
                    return;
                }
                if knobs.drop_after == Some(sent) {
                    yield Step::Drop;
                    return;
                }
                if knobs.stall_after == Some(sent) {
                    yield Step::Stall;
                    tokio::time::sleep(knobs.stall).await;
                    next = next.max(Instant::now());
                }
            }
            if step.is_token() {
                if let Some(period) = period {
                    tokio::time::sleep_until(next).await;
                    next += period;
                }
                sent += 1;
            }
            yield step;
        }
    }
}

/// One wire format of a streamed reply: what it sends for each [`Step`].
trait WireFormat: 'static {
    /// The knobs of this reply.
    fn knobs(&self) -> &Knobs;

    /// What this reply says.
    fn turn(&self) -> &Turn;

    /// The frames for `step`, in order; none for the steps the format has nothing for.
    fn render(&self, step: Step) -> Vec<Bytes>;
}

/// The `text/event-stream` response of a streamed reply: the [`steps`] of the format's knobs,
/// rendered by `format`. [`Step::Drop`] ends the body with an `Err`, on which actix closes the
/// connection without the chunked-encoding terminator, so the client sees a body error, not a
/// clean EOF (actix also logs "Response payload stream error" at error level).
fn event_stream(format: impl WireFormat) -> HttpResponse {
    let steps = steps(format.knobs().clone(), format.turn().shape(format.knobs()));
    let body = async_stream::stream! {
        let mut steps = std::pin::pin!(steps);
        while let Some(step) = steps.next().await {
            if step == Step::Drop {
                // actix drops its unflushed write buffer on a body error (head included, if
                // nothing was flushed yet); returning `Pending` once makes it flush first.
                tokio::task::yield_now().await;
                yield Err(io::Error::new(io::ErrorKind::ConnectionAborted, "mock drop"));
                return;
            }
            for frame in format.render(step) {
                yield Ok(frame);
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

/// Word `index` of the reply, `w{index} `, or of the reasoning, `r{index} `.
fn word(index: usize, reasoning: bool) -> String {
    if reasoning {
        format!("r{index} ")
    } else {
        format!("w{index} ")
    }
}

impl Knobs {
    /// Pause between two words.
    fn word_period(&self) -> Option<Duration> {
        (self.tps > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / self.tps).ok())
            .flatten()
    }

    /// All the reply words (or all the reasoning words) in one string, for a whole answer.
    fn words(&self, reasoning: bool) -> String {
        let count = if reasoning { self.reasoning } else { self.len };
        (0..count).map(|index| word(index, reasoning)).collect()
    }

    /// A non-streaming request takes as long as the stream would have: `ttft_ms` plus the pacing
    /// of the tokens of `turn`.
    async fn wait_whole_reply(&self, turn: &Turn) {
        let words = u32::try_from(turn.tokens(self).saturating_sub(1)).unwrap_or(u32::MAX);
        let pacing = self
            .word_period()
            .and_then(|p| p.checked_mul(words))
            .unwrap_or(Duration::ZERO);
        let wait = self.ttft.saturating_add(pacing);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

// ---- the Chat Completions reply ----

#[derive(Deserialize)]
struct MockRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<MockMessage>,
    stream: Option<bool>,
    stream_options: Option<MockStreamOptions>,
}

#[derive(Deserialize)]
struct MockStreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct MockMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

impl MockMessage {
    /// Words of a string content, or of the `text` of each content part and the content of each
    /// Anthropic `tool_result` block.
    fn word_count(&self) -> u64 {
        match &self.content {
            Value::String(text) => tools::word_count(text),
            Value::Array(parts) => parts
                .iter()
                .map(|part| match part.get("text").and_then(Value::as_str) {
                    Some(text) => tools::word_count(text),
                    None if part.get("type").and_then(Value::as_str) == Some("tool_result") => part
                        .get("content")
                        .map_or(0, |content| tools::word_count(&content_text(content))),
                    None => 0,
                })
                .sum(),
            _ => 0,
        }
    }
}

/// The tool rounds of a Chat Completions request: each run of `role: "tool"` (or legacy
/// `"function"`) messages is one round.
fn openai_tool_history(messages: &[MockMessage]) -> ToolHistory {
    let mut history = ToolHistory::default();
    let mut in_results = false;
    for message in messages {
        let is_result = matches!(message.role.as_str(), "tool" | "function");
        if is_result {
            if !in_results {
                history.rounds += 1;
            }
            history.last_result = Some(content_text(&message.content));
        } else if message.role == "user" {
            let text = content_text(&message.content);
            if !text.trim().is_empty() {
                history.last_user_text = text;
            }
        }
        in_results = is_result;
    }
    history
}

/// Everything needed to produce one reply.
struct Reply {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    include_usage: bool,
    turn: Turn,
    knobs: Knobs,
}

impl Reply {
    fn usage(&self) -> Value {
        let completion_tokens = self.turn.tokens(&self.knobs) as u64;
        let cached = self.knobs.cached as u64;
        json!({
            "prompt_tokens": self.prompt_tokens + cached,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + cached + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": self.knobs.reasoning},
        })
    }

    /// One `data: {chunk}\n\n` frame.
    fn frame(&self, choices: Value, usage: Value) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        });
        if self.include_usage
            && let Some(object) = chunk.as_object_mut()
        {
            object.insert("usage".to_owned(), usage);
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    fn delta_frame(&self, delta: Value) -> Bytes {
        self.frame(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            Value::Null,
        )
    }

    /// Whether the stream opens with the role chunk: not when the answer is only tool calls,
    /// whose first chunk carries the role, as OpenAI sends it.
    fn opens_with_role(&self) -> bool {
        self.knobs.reasoning > 0 || self.turn.has_text(&self.knobs)
    }

    fn finish_reason(&self) -> &'static str {
        if self.turn.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    fn call_id(&self, call: usize) -> String {
        self.turn.call_id(call, "call_")
    }

    fn completion(&self) -> Value {
        let content = if self.turn.has_text(&self.knobs) {
            Value::String(self.turn.text(&self.knobs))
        } else {
            Value::Null
        };
        let mut message = json!({
            "role": "assistant",
            "content": content,
            "refusal": null,
        });
        if let Some(object) = message.as_object_mut() {
            if self.knobs.reasoning > 0 {
                object.insert(
                    "reasoning_content".to_owned(),
                    Value::String(self.knobs.words(true)),
                );
            }
            if !self.turn.calls.is_empty() {
                let calls: Vec<Value> = self
                    .turn
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(index, call)| {
                        json!({
                            "id": self.call_id(index),
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        })
                    })
                    .collect();
                object.insert("tool_calls".to_owned(), Value::Array(calls));
            }
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "usage": self.usage(),
        })
    }
}

/// The Chat Completions stream: a role chunk, one delta chunk per word, for each tool call a
/// chunk with its id and name and one per argument piece, the finishing chunk, the usage chunk
/// if asked for, `[DONE]`.
impl WireFormat for Reply {
    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn turn(&self) -> &Turn {
        &self.turn
    }

    fn render(&self, step: Step) -> Vec<Bytes> {
        match step {
            Step::KeepAlive => vec![Bytes::from_static(b": keep-alive\n\n")],
            Step::Open if self.opens_with_role() => {
                vec![self.delta_frame(json!({"role": "assistant", "content": ""}))]
            }
            Step::Word { index, reasoning } => {
                let text = self.turn.word(index, reasoning);
                let delta = if reasoning {
                    json!({"content": null, "reasoning_content": text})
                } else {
                    json!({"content": text})
                };
                vec![self.delta_frame(delta)]
            }
            Step::CallBegin { call } => {
                let name = self.turn.calls.get(call).map_or("", |c| c.name.as_str());
                let tool_calls = json!([{
                    "index": call,
                    "id": self.call_id(call),
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]);
                let delta = if call == 0 && !self.opens_with_role() {
                    json!({
                        "role": "assistant",
                        "content": null,
                        "tool_calls": tool_calls,
                        "refusal": null,
                    })
                } else {
                    json!({"tool_calls": tool_calls})
                };
                vec![self.delta_frame(delta)]
            }
            Step::Piece { call, piece } => {
                let arguments = self
                    .turn
                    .calls
                    .get(call)
                    .and_then(|c| c.pieces.get(piece))
                    .map_or("", String::as_str);
                vec![self.delta_frame(json!({
                    "tool_calls": [{"index": call, "function": {"arguments": arguments}}],
                }))]
            }
            Step::Error => vec![Bytes::from_static(
                b"data: {\"error\":{\"message\":\"mock mid-stream error\",\"type\":\"server_error\"}}\n\n",
            )],
            Step::Done => {
                let mut frames = vec![self.frame(
                    json!([{
                        "index": 0,
                        "delta": {},
                        "logprobs": null,
                        "finish_reason": self.finish_reason(),
                    }]),
                    Value::Null,
                )];
                if self.include_usage {
                    frames.push(self.frame(json!([]), self.usage()));
                }
                frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
                frames
            }
            Step::Open
            | Step::Stall
            | Step::Begin { .. }
            | Step::CallEnd { .. }
            | Step::Drop => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use futures::StreamExt;

    use super::*;
    use crate::providers::openai::{self, OpenAiConfig};
    use crate::providers::{
        ChatMessage, ChatRequest, FinishReason, ProviderError, ProviderEvent, Usage,
    };

    fn config(mock: &MockUpstream) -> OpenAiConfig {
        OpenAiConfig {
            base_url: mock.base_url(),
            api_key: "test".into(),
            name: "openai".into(),
            reasoning_effort: None,
        }
    }

    pub(super) fn request(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages: vec![
                ChatMessage {
                    role: "system".into(),
                    content: "be brief".into(),
                    parts: Vec::new(),
                    ..Default::default()
                },
                ChatMessage {
                    role: "user".into(),
                    content: "say three words".into(),
                    parts: Vec::new(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    /// Streams `model` from the mock and collects every item.
    async fn collect(
        mock: &MockUpstream,
        model: &str,
    ) -> Result<Vec<Result<ProviderEvent, ProviderError>>, ProviderError> {
        let http = reqwest::Client::new();
        let stream = openai::stream(&http, &config(mock), &request(model)).await?;
        Ok(stream.collect().await)
    }

    pub(super) fn text_of(events: &[Result<ProviderEvent, ProviderError>]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                Ok(ProviderEvent::TextDelta { text }) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_plain_reply_streams_words_then_usage_then_stop() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=3").await.unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w2 ".into() }),
            Ok(ProviderEvent::Usage {
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 3,
                    reasoning_tokens: 0,
                    cached_input_tokens: 0,
                },
            }),
            Ok(ProviderEvent::Finish {
                reason: FinishReason::Stop,
            }),
        ];
        assert_eq!(events, expected);
        assert_eq!(text_of(&events), "w0 w1 w2 ");
        assert_eq!(mock.requests(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn reasoning_words_come_first_with_keepalive() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=2,reasoning=2,keepalive")
            .await
            .unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::ReasoningDelta { text: "r0 ".into() }),
            Ok(ProviderEvent::ReasoningDelta { text: "r1 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Ok(ProviderEvent::Usage {
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 4,
                    reasoning_tokens: 2,
                    cached_input_tokens: 0,
                },
            }),
            Ok(ProviderEvent::Finish {
                reason: FinishReason::Stop,
            }),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_status_knob_answers_an_http_error_with_retry_after() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let Err(error) = collect(&mock, "mock:status=429,retry_after=2").await else {
            panic!("expected an HTTP error");
        };
        assert_eq!(
            error,
            ProviderError::Http {
                status: 429,
                message: "mock error (HTTP 429)".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert!(error.is_retryable());
        assert_eq!(mock.requests(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_header_overrides_the_model_knobs() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/chat/completions", mock.base_url()))
            .header(KNOB_HEADER, "status=503")
            .json(&json!({"model": "mock:len=3", "messages": [], "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");

        let response = http
            .post(format!("{}/chat/completions", mock.base_url()))
            .header(KNOB_HEADER, "bogus=1")
            .json(&json!({"model": "mock", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(mock.requests(), 2);
        mock.stop().await;
    }

    #[tokio::test]
    async fn error_after_sends_an_error_object_mid_stream() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,error_after=2").await.unwrap();
        let expected: Vec<Result<ProviderEvent, ProviderError>> = vec![
            Ok(ProviderEvent::TextDelta { text: "w0 ".into() }),
            Ok(ProviderEvent::TextDelta { text: "w1 ".into() }),
            Err(ProviderError::Stream("mock mid-stream error".into())),
        ];
        assert_eq!(events, expected);
        mock.stop().await;
    }

    #[tokio::test]
    async fn drop_after_breaks_the_connection_without_done() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:len=5,drop_after=2").await.unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(text_of(&events), "w0 w1 ");
        let Some(Err(ProviderError::Stream(message))) = events.last() else {
            panic!("expected a stream error, got {events:?}");
        };
        assert!(message.starts_with("stream ended early"), "{message}");
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_raw_body_of_a_dropped_stream_fails_in_reqwest() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({"model": "mock:len=5,drop_after=2", "messages": [], "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let error = response.text().await.unwrap_err();
        assert!(error.is_body() || error.is_decode(), "{error:?}");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stall_delays_the_rest_of_the_reply() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let started = StdInstant::now();
        let events = collect(&mock, "mock:len=3,stall_after=1,stall_ms=300")
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(text_of(&events), "w0 w1 w2 ");
        assert!(matches!(
            events.last(),
            Some(Ok(ProviderEvent::Finish {
                reason: FinishReason::Stop
            }))
        ));
        mock.stop().await;
    }

    #[tokio::test]
    async fn pacing_follows_tps_and_ttft() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let started = StdInstant::now();
        // First word after 100 ms, then 4 more at 50 words/s: ≥ 180 ms in all.
        let events = collect(&mock, "mock:len=5,tps=50,ttft_ms=100")
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(180));
        assert_eq!(text_of(&events), "w0 w1 w2 w3 w4 ");
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_exact_wire_frames() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({
                "model": "mock:len=1",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}],
                "stream": true,
                "stream_options": {"include_usage": true},
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let frames: Vec<&str> = body.split_terminator("\n\n").collect();
        assert_eq!(frames.len(), 5, "{body}");
        let json = |frame: &str| -> Value {
            serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap()
        };
        let role = json(frames[0]);
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["model"], "mock:len=1");
        assert_eq!(
            role["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(role["usage"], Value::Null);
        assert_eq!(json(frames[1])["choices"][0]["delta"]["content"], "w0 ");
        let finish = json(frames[2]);
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = json(frames[3]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({
                "prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            })
        );
        assert_eq!(frames[4], "data: [DONE]");
        mock.stop().await;
    }

    #[tokio::test]
    async fn without_include_usage_there_is_no_usage_chunk() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({"model": "mock:len=2", "messages": [], "stream": true}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("usage"), "{body}");
        assert!(body.ends_with("data: [DONE]\n\n"));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_non_streaming_request_gets_a_chat_completion() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body: Value = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({
                "model": "mock:len=3,reasoning=1",
                "messages": [{"role": "user", "content": "one two three four"}],
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], "w0 w1 w2 ");
        assert_eq!(body["choices"][0]["message"]["reasoning_content"], "r0 ");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 4);
        assert_eq!(body["usage"]["completion_tokens"], 4);
        assert_eq!(
            body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            1
        );
        mock.stop().await;
    }

    /// The steps the engine yields for `spec` (model-name knobs, without `mock:`).
    async fn steps_of(spec: &str) -> Vec<Step> {
        let knobs = Knobs::from_request(&format!("mock:{spec}"), None).unwrap();
        let shape = Turn::choose(&knobs, &ToolHistory::default()).shape(&knobs);
        steps(knobs, shape).collect().await
    }

    fn reasoning_word(index: usize) -> Step {
        Step::Word {
            index,
            reasoning: true,
        }
    }

    fn reply_word(index: usize) -> Step {
        Step::Word {
            index,
            reasoning: false,
        }
    }

    const REASONING: Step = Step::Begin { reasoning: true };
    const REPLY: Step = Step::Begin { reasoning: false };

    #[tokio::test]
    async fn the_engine_yields_keepalive_open_then_each_run_of_words_then_done() {
        assert_eq!(
            steps_of("len=2,reasoning=2,keepalive").await,
            [
                Step::KeepAlive,
                Step::Open,
                REASONING,
                reasoning_word(0),
                reasoning_word(1),
                REPLY,
                reply_word(0),
                reply_word(1),
                Step::Done,
            ]
        );
        // The reply run begins even without words; a reasoning run only with some.
        assert_eq!(steps_of("len=0").await, [Step::Open, REPLY, Step::Done]);
        assert_eq!(
            steps_of("len=0,reasoning=1").await,
            [Step::Open, REASONING, reasoning_word(0), REPLY, Step::Done]
        );
    }

    #[tokio::test]
    async fn the_engine_applies_error_then_drop_then_stall_before_the_nth_word() {
        assert_eq!(
            steps_of("len=3,error_after=1,drop_after=1").await,
            [Step::Open, REPLY, reply_word(0), Step::Error]
        );
        assert_eq!(
            steps_of("len=2,reasoning=1,error_after=0").await,
            [Step::Open, Step::Error]
        );
        assert_eq!(
            steps_of("len=2,drop_after=2,stall_after=2,stall_ms=0").await,
            [Step::Open, REPLY, reply_word(0), reply_word(1), Step::Drop]
        );
        assert_eq!(
            steps_of("len=2,reasoning=1,stall_after=1,stall_ms=1").await,
            [
                Step::Open,
                REASONING,
                reasoning_word(0),
                Step::Stall,
                REPLY,
                reply_word(0),
                reply_word(1),
                Step::Done,
            ]
        );
        assert_eq!(
            steps_of("len=1,stall_after=1,stall_ms=1").await,
            [Step::Open, REPLY, reply_word(0), Step::Stall, Step::Done]
        );
    }

    #[tokio::test]
    async fn the_engine_waits_ttft_then_paces_words_and_stalls() {
        let started = StdInstant::now();
        // The first word after 30 ms, two more 10 ms apart, then a 50 ms stall before the last.
        let steps = steps_of("len=4,tps=100,ttft_ms=30,stall_after=3,stall_ms=50").await;
        assert!(started.elapsed() >= Duration::from_millis(30 + 20 + 50));
        assert_eq!(steps.last(), Some(&Step::Done));
    }

    #[test]
    fn whole_answers_join_the_words() {
        let knobs = Knobs::from_request("mock:len=3,reasoning=2", None).unwrap();
        assert_eq!(knobs.words(false), "w0 w1 w2 ");
        assert_eq!(knobs.words(true), "r0 r1 ");
        assert_eq!(word(7, false), "w7 ");
    }

    #[test]
    fn knobs_parse_from_the_model_name_and_header() {
        let knobs =
            Knobs::from_request("mock:len=3, tps=2.5,keepalive", Some("len=7,ttft_ms=40")).unwrap();
        assert_eq!(knobs.len, 7);
        assert_eq!(knobs.tps, 2.5);
        assert!(knobs.keepalive);
        assert_eq!(knobs.ttft, Duration::from_millis(40));
        assert_eq!(Knobs::from_request("mock", None).unwrap(), Knobs::default());
        assert_eq!(
            Knobs::from_request("gpt-4o", None).unwrap(),
            Knobs::default()
        );
        assert!(Knobs::from_request("mock:len=x", None).is_err());
        assert!(Knobs::from_request("mock:tps=-1", None).is_err());
        assert!(Knobs::from_request("mock:status=42", None).is_err());
        assert!(Knobs::from_request("mock", Some("nope=1")).is_err());
        assert!(
            !Knobs::from_request("mock:keepalive=0", None)
                .unwrap()
                .keepalive
        );
    }

    /// The JSON of every `data:` line of an SSE body (any format), `[DONE]` left out.
    pub(super) fn data_frames(body: &str) -> Vec<Value> {
        body.lines()
            .filter_map(|line| line.trim_end_matches('\r').strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    /// A Chat Completions request with a question, the assistant's calls and their results.
    fn openai_second_round(result: &str) -> Value {
        json!([
            {"role": "user", "content": "search rust"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_mock_0_0", "type": "function",
                 "function": {"name": "web_search", "arguments": "{\"query\":\"rust\"}"}},
                {"id": "call_mock_0_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_mock_0_0", "content": "ignored earlier result"},
            {"role": "tool", "tool_call_id": "call_mock_0_1", "content": result},
        ])
    }

    const TWO_CALLS: &str = concat!(
        r#"[{"call": [{"name": "web_search", "arguments": {"query": "rust async runtimes"}},"#,
        r#" {"name": "get_time", "arguments": {"tz": "CET"}}]}, {"text": "found: {result}"}]"#,
    );

    #[tokio::test]
    async fn a_script_streams_parallel_openai_tool_calls_in_pieces() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .header(SCRIPT_HEADER, TWO_CALLS)
            .json(&json!({
                "model": "mock",
                "messages": [{"role": "user", "content": "search rust"}],
                "stream": true,
                "stream_options": {"include_usage": true},
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        let frames = data_frames(&body);
        // No role chunk of its own: the first call's chunk carries the role.
        let first = &frames[0]["choices"][0]["delta"];
        assert_eq!(
            *first,
            json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "index": 0,
                    "id": "call_mock_0_0",
                    "type": "function",
                    "function": {"name": "web_search", "arguments": ""},
                }],
            })
        );
        let mut arguments = [String::new(), String::new()];
        let mut pieces = [0, 0];
        let mut starts = Vec::new();
        for frame in &frames {
            let Some(calls) = frame["choices"][0]["delta"]["tool_calls"].as_array() else {
                continue;
            };
            assert_eq!(calls.len(), 1, "{frame}");
            let call = &calls[0];
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call.get("id") {
                starts.push((index, id.clone(), call["function"]["name"].clone()));
                assert_eq!(call["type"], "function");
                assert_eq!(call["function"]["arguments"], "");
            } else {
                // Later pieces carry only the index and an arguments piece.
                assert_eq!(call.as_object().unwrap().len(), 2, "{call}");
                arguments[index].push_str(call["function"]["arguments"].as_str().unwrap());
                pieces[index] += 1;
            }
        }
        assert_eq!(
            starts,
            [
                (0, json!("call_mock_0_0"), json!("web_search")),
                (1, json!("call_mock_0_1"), json!("get_time")),
            ]
        );
        assert_eq!(arguments[0], r#"{"query":"rust async runtimes"}"#);
        assert_eq!(arguments[1], r#"{"tz":"CET"}"#);
        assert!(pieces[0] > 1 && pieces[1] > 1, "{pieces:?}");
        assert!(!body.contains("\"content\":\""), "no words: {body}");
        let finish = &frames[frames.len() - 2]["choices"][0];
        assert_eq!(finish["finish_reason"], "tool_calls");
        assert_eq!(finish["delta"], json!({}));
        let usage = &frames[frames.len() - 1]["usage"];
        assert_eq!(usage["prompt_tokens"], 2);
        assert_eq!(usage["completion_tokens"], pieces[0] + pieces[1]);
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_tools_knob_drives_the_openai_adapter_to_tool_calls() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let events = collect(&mock, "mock:tools=web_search+get_time")
            .await
            .unwrap();
        let starts: Vec<(u32, String, String)> = events
            .iter()
            .filter_map(|e| match e {
                Ok(ProviderEvent::ToolCallStart { index, id, name }) => {
                    Some((*index, id.clone(), name.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            starts,
            [
                (0, "call_mock_0_0".into(), "web_search".into()),
                (1, "call_mock_0_1".into(), "get_time".into()),
            ]
        );
        let arguments = |wanted: u32| -> String {
            events
                .iter()
                .filter_map(|e| match e {
                    Ok(ProviderEvent::ToolCallDelta { index, arguments }) if *index == wanted => {
                        Some(arguments.as_str())
                    }
                    _ => None,
                })
                .collect()
        };
        // The last user message is the query.
        assert_eq!(arguments(0), r#"{"query":"say three words"}"#);
        assert_eq!(arguments(1), r#"{"query":"say three words"}"#);
        assert_eq!(text_of(&events), "");
        assert_eq!(
            events.last(),
            Some(&Ok(ProviderEvent::Finish {
                reason: FinishReason::ToolCalls
            }))
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_round_with_tool_results_answers_words_that_echo_the_last_result() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        let result = "Tokio is an asynchronous runtime for the Rust programming language";
        let body = http
            .post(format!("{}/chat/completions", mock.base_url()))
            .header(SCRIPT_HEADER, TWO_CALLS)
            .json(&json!({
                "model": "mock:len=2",
                "messages": openai_second_round(result),
                "stream": true,
                "stream_options": {"include_usage": true},
            }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let frames = data_frames(&body);
        let text: String = frames
            .iter()
            .filter_map(|f| f["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            text,
            "found: Tokio is an asynchronous runtime for the w0 w1 "
        );
        assert!(!body.contains("tool_calls\":["), "{body}");
        assert_eq!(
            frames[frames.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        let usage = &frames[frames.len() - 1]["usage"];
        // 2 user words, 3 of the earlier result, 10 of the last one.
        assert_eq!(usage["prompt_tokens"], 15);
        assert_eq!(usage["completion_tokens"], 10);

        // Without a script, a reply to tool results still shows the result.
        let body: Value = http
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({"model": "mock:len=1", "messages": openai_second_round("42 degrees")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "result: 42 degrees w0 "
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_non_streaming_request_gets_its_tool_calls_whole() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let body: Value = reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .header(SCRIPT_HEADER, TWO_CALLS)
            .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "q"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"][1],
            json!({
                "id": "call_mock_0_1",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"},
            })
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_bad_script_is_a_400() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let http = reqwest::Client::new();
        for (header, model) in [
            (Some(r#"[{"call": [{"nam": "x"}]}]"#), "mock"),
            (None, "mock:script=%%%"),
            (None, "mock:tools="),
        ] {
            let mut request = http.post(format!("{}/chat/completions", mock.base_url()));
            if let Some(header) = header {
                request = request.header(SCRIPT_HEADER, header);
            }
            let response = request
                .json(&json!({"model": model, "messages": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{header:?} {model}");
        }
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_mock_records_what_it_received() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let sent = json!({
            "model": "mock:len=1",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]}],
            "tools": [{"type": "function", "function": {
                "name": "web_search", "description": "search", "parameters": {"type": "object"},
            }}],
        });
        reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .bearer_auth("sk-test")
            .header(KNOB_HEADER, "len=2")
            .json(&sent)
            .send()
            .await
            .unwrap();
        reqwest::Client::new()
            .post(format!("{}/chat/completions", mock.base_url()))
            .body("not json")
            .send()
            .await
            .unwrap();
        let recorded = mock.recorded();
        assert_eq!(recorded.len(), 2);
        let first = &recorded[0];
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, "/v1/chat/completions");
        assert_eq!(first.body, sent);
        assert_eq!(
            first.body["messages"][0]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBORw0KGgo="
        );
        assert_eq!(first.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(first.header("X-Mock"), Some("len=2"));
        assert_eq!(recorded[1].body, Value::Null);
        assert_eq!(
            mock.last_recorded("/chat/completions").unwrap().body,
            Value::Null
        );
        assert!(mock.last_recorded("/messages").is_none());
        mock.clear_recorded();
        assert!(mock.recorded().is_empty());
        assert_eq!(mock.requests(), 2);
        mock.stop().await;
    }

    #[test]
    fn the_log_keeps_the_last_hundred_requests() {
        let recorder = Recorder::new(RECORDED_REQUESTS);
        for i in 0..105 {
            let request = actix_web::test::TestRequest::post()
                .uri(&format!("/v1/chat/completions?n={i}"))
                .to_http_request();
            recorder.record(&request, json!(i));
        }
        let all = recorder.all();
        assert_eq!(all.len(), RECORDED_REQUESTS);
        assert_eq!(all[0].body, json!(5));
        assert_eq!(all[0].query, "n=5");
        assert_eq!(all[99].body, json!(104));
        let off = Recorder::new(0);
        off.record(
            &actix_web::test::TestRequest::default().to_http_request(),
            json!(1),
        );
        assert!(off.all().is_empty());
    }

    #[tokio::test]
    async fn the_engine_paces_tool_calls_after_the_words_and_cuts_inside_them() {
        let script = json!([{"text": "hi", "call": {"name": "f", "arguments": {"a": 1}}}]);
        let spec = format!("reasoning=1,{}", script_knob(&script));
        let knobs = Knobs::from_request(&format!("mock:{spec}"), None).unwrap();
        let turn = Turn::choose(&knobs, &ToolHistory::default());
        assert_eq!(turn.calls[0].pieces, ["{\"", "a", "\":", "1", "}"]);
        assert_eq!(
            steps_of(&spec).await,
            [
                Step::Open,
                REASONING,
                reasoning_word(0),
                REPLY,
                reply_word(0),
                Step::CallBegin { call: 0 },
                Step::Piece { call: 0, piece: 0 },
                Step::Piece { call: 0, piece: 1 },
                Step::Piece { call: 0, piece: 2 },
                Step::Piece { call: 0, piece: 3 },
                Step::Piece { call: 0, piece: 4 },
                Step::CallEnd { call: 0 },
                Step::Done,
            ]
        );
        // Without a text the reply run is left out; `*_after` counts the pieces.
        let script = json!([{"call": {"name": "f", "arguments": {"a": 1}}}]);
        assert_eq!(
            steps_of(&format!("error_after=2,{}", script_knob(&script))).await,
            [
                Step::Open,
                Step::CallBegin { call: 0 },
                Step::Piece { call: 0, piece: 0 },
                Step::Piece { call: 0, piece: 1 },
                Step::Error,
            ]
        );
    }
}
