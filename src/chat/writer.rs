//! The task that runs one generation: calls the provider, turns its deltas into chunk batches,
//! makes each batch durable (group commit through the node's writer), and only then hands it to
//! the readers. A client disconnecting never stops it; a stop request or the end of the
//! provider stream does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use threadline_domain::generation::{
    Chunk, Generation, GenerationCommand, GenerationEvent, GenerationStatus, TokenUsage,
};
use threadline_domain::thread::{Thread, ThreadCommand, TitleSource};
use threadline_domain::values::Title;

use super::{Batch, ChatService, Committed, LiveGeneration, StartReply};
use crate::providers::{ChatMessage, ChatRequest, ProviderError, ProviderEvent, ProviderStream};
use crate::store::bus::CommandMeta;

mod tools;

/// Attempts at a provider call that fails before its first token.
const PROVIDER_ATTEMPTS: u32 = 3;
/// Total time allowed for getting a stream from the provider or its fallbacks (retries and
/// their waits included).
const OPEN_DEADLINE: Duration = Duration::from_secs(45);
/// Longest silence tolerated from a provider mid-stream.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a title may be.
const TITLE_MAX_CHARS: usize = 80;

/// Event metadata for a generation's rows.
pub fn metadata(meta: &CommandMeta) -> Value {
    json!({
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "actor": meta.actor,
    })
}

/// One running generation's bookkeeping.
struct Run {
    service: Arc<ChatService>,
    id: String,
    generation: Generation,
    live: Arc<LiveGeneration>,
    metadata: Value,
    next_sequence: i64,
    completed: bool,
    /// No chunk was durable yet (the reply is not charged when it ends now).
    first_chunk: bool,
    /// Time spent waiting on the provider: opening streams and awaiting their items.
    provider_wait: Duration,
    /// The tool call ids of the reply so far.
    call_ids: HashSet<String>,
}

impl Run {
    /// Decides, appends durably, then publishes. Returns false when the append failed.
    async fn commit(&mut self, command: GenerationCommand) -> bool {
        match self.commit_quietly(command).await {
            Some(committed) => {
                self.publish(committed);
                true
            }
            None => false,
        }
    }

    fn publish(&self, committed: Committed) {
        self.live.publish(committed);
        self.service.committed();
    }

    /// Decides and appends durably without telling readers yet.
    async fn commit_quietly(&mut self, command: GenerationCommand) -> Option<Committed> {
        let events = match self.generation.decide(command) {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(generation = %self.id, error = %e, "generation refused a command");
                return None;
            }
        };
        if let Err(e) = self
            .service
            .append(&self.id, self.next_sequence, &events, &self.metadata)
            .await
        {
            tracing::error!(generation = %self.id, error = %e, "cannot append generation events");
            return None;
        }
        let committed: Vec<(i64, GenerationEvent)> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (self.next_sequence + i as i64, e))
            .collect();
        for (_, event) in &committed {
            self.generation.fold(event);
        }
        self.next_sequence += committed.len() as i64;
        Some(Arc::new(Batch {
            committed_at: Instant::now(),
            events: committed,
        }))
    }

    /// Appends chunks that are not provider deltas (tool inputs, results, research steps).
    async fn commit_chunks(&mut self, chunks: Vec<Chunk>) -> bool {
        self.commit(GenerationCommand::AppendChunks { chunks })
            .await
    }

    /// A tool call id for a call Threadline makes itself (`{prefix}_1`, `{prefix}_2`, …).
    fn new_call_id(&mut self, prefix: &str) -> String {
        let mut n = self.call_ids.len() + 1;
        loop {
            let id = format!("{prefix}_{n}");
            if self.call_ids.insert(id.clone()) {
                return id;
            }
            n += 1;
        }
    }

    async fn flush(&mut self, pending: &mut Vec<Chunk>) -> bool {
        if pending.is_empty() {
            return true;
        }
        let chunks = std::mem::take(pending);
        let committed = self
            .commit(GenerationCommand::AppendChunks { chunks })
            .await;
        if committed {
            self.service
                .metrics
                .chunk_batches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        committed
    }
}

/// Runs a generation to its end: the chosen tool first (if any), then the model, and while it
/// asks for tools (and the step limit allows) their results and the model again.
pub(super) async fn run(
    service: Arc<ChatService>,
    reply: StartReply,
    generation: Generation,
    live: Arc<LiveGeneration>,
    metadata: Value,
) {
    let mut run = Run {
        service: service.clone(),
        id: reply.generation_id.clone(),
        generation,
        live: live.clone(),
        metadata,
        next_sequence: 2,
        completed: false,
        first_chunk: true,
        provider_wait: Duration::ZERO,
        call_ids: HashSet::new(),
    };
    let mut stop = live.stop.subscribe();
    let toolbox = reply.tools.as_ref().map(|t| t.toolbox.clone());
    let mut request = ChatRequest {
        model: reply.model.upstream.clone(),
        messages: reply.context.clone(),
        tools: toolbox.as_ref().map(|t| t.specs()).unwrap_or_default(),
        options: reply.options.clone(),
    };
    // Tools the caller runs itself: offered to the model; a step that calls them ends the
    // reply with its calls (finish reason `tool_calls`), for the caller to answer.
    request.tools.extend(reply.client_tools.iter().cloned());
    let provider_started = Instant::now();
    let mut usage = TokenUsage::default();
    let mut finish_reason = "stop".to_owned();
    let max_steps = service.tool_steps();
    let forced = match &reply.tools {
        Some(tools) => tools::run_forced(&mut run, &reply, tools, &mut request, &mut stop).await,
        None => Ok(Default::default()),
    };
    let mut steps = 0;
    let outcome = match forced {
        Err(outcome) => outcome,
        Ok(spent) => loop {
            // A research plan's tokens count with the steps'.
            if steps == 0 {
                add_usage(&mut usage, provider_usage(spent));
            }
            steps += 1;
            let step = stream_step(&mut run, &reply, &request, &mut stop).await;
            add_usage(&mut usage, step.usage);
            finish_reason = step.finish_reason.clone();
            let toolbox = match (&step.outcome, &toolbox) {
                (Outcome::Completed, Some(toolbox))
                    if !step.calls.is_empty() && !request.tools.is_empty() =>
                {
                    toolbox.clone()
                }
                _ => break step.outcome,
            };
            match tools::run_calls(
                &mut run,
                toolbox.as_ref(),
                step,
                steps >= max_steps,
                &mut stop,
            )
            .await
            {
                Ok(Some(messages)) => request.messages.extend(messages),
                Ok(None) => break Outcome::Completed,
                Err(outcome) => break outcome,
            }
        },
    };
    let provider_ms = provider_started.elapsed().as_millis() as u64;
    let at = Utc::now();
    run.completed = matches!(outcome, Outcome::Completed);
    service
        .metrics
        .reply_overhead
        .observe(reply.received.elapsed().saturating_sub(run.provider_wait));
    let counter = match outcome {
        Outcome::Completed => Some(&service.metrics.replies_completed),
        Outcome::Failed(_) => Some(&service.metrics.replies_failed),
        Outcome::Stopped => Some(&service.metrics.replies_stopped),
        Outcome::Lost => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let cost_micros = matches!(outcome, Outcome::Completed).then(|| {
        reply.model.prices.cost_micros(
            usage.input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usage.cached_input_tokens,
            reply.model.provider.usage_counting(),
        )
    });
    // Credits: charged for a completed reply and for one that produced anything (at the
    // actual cost when the provider reported usage); given back when it failed or was stopped
    // before its first token.
    let charged = matches!(outcome, Outcome::Completed) || !run.first_chunk;
    let id = run.id.clone();
    let close = service.close_reservation(
        &reply.reservation,
        &id,
        charged.then_some(cost_micros),
        &reply.meta,
    );
    if matches!(outcome, Outcome::Lost) {
        close.await;
        return end(&service, &reply, &run, Outcome::Lost, None).await;
    }
    let command = match &outcome {
        Outcome::Completed => GenerationCommand::Complete {
            cost_micros: cost_micros.unwrap_or(0),
            finish_reason,
            usage,
            provider_ms,
            at,
        },
        Outcome::Failed(error) => GenerationCommand::Fail {
            error: error.clone(),
            at,
        },
        Outcome::Stopped => GenerationCommand::Stop { at },
        Outcome::Lost => GenerationCommand::Interrupt { at },
    };
    // The ledger and the reply's end are separate streams: appended side by side, they share
    // a group commit.
    let (terminal, ()) = tokio::join!(run.commit_quietly(command), close);
    // The terminal event reaches live readers only after the thread's end is committed (and,
    // beside other nodes, shown by the projections): a client that reads the thread when its
    // stream ends sees it done (and titled, when the title needs no model).
    let titled = reply.needs_title && run.completed && reply.origin.thread_id().is_some();
    let quick_title = titled
        .then(|| quick_title(&reply.first_user_text))
        .flatten();
    match terminal {
        Some(terminal) => {
            let needs_model = titled && quick_title.is_none();
            end(&service, &reply, &run, outcome, quick_title).await;
            run.publish(terminal);
            if needs_model {
                title_thread(&service, &reply).await;
            }
        }
        None => end(&service, &reply, &run, Outcome::Lost, None).await,
    }
}

/// How one model call ended, with what it asked for.
struct StepEnd {
    outcome: Outcome,
    usage: TokenUsage,
    finish_reason: String,
    /// The step's text (it goes back to the model with the calls).
    text: String,
    /// The step's reasoning as the provider signed it (it goes back too).
    thinking: Option<crate::providers::Thinking>,
    /// The tool calls the model made, in order.
    calls: Vec<PendingCall>,
}

/// A tool call as it streams in.
#[derive(Debug, Clone, PartialEq)]
struct PendingCall {
    /// The provider's index of the call within the step.
    index: u32,
    /// The id in the reply's events and UI stream (unique within the reply).
    id: String,
    /// The id the provider gave (sent back with the result).
    provider_id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

/// One model call: opens the stream and makes its deltas durable batch by batch.
async fn stream_step(
    run: &mut Run,
    reply: &StartReply,
    request: &ChatRequest,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> StepEnd {
    let opened = Instant::now();
    let stream = tokio::select! {
        result = open_stream(&run.service, reply, request) => Some(result),
        _ = stop.wait_for(|s| *s) => None,
    };
    run.provider_wait += opened.elapsed();
    let mut step = StepState::default();
    let outcome = match stream {
        None => Outcome::Stopped,
        Some(Err(e)) => Outcome::Failed(e.to_string()),
        Some(Ok(mut stream)) => loop {
            let waiting = Instant::now();
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break Outcome::Stopped,
                next = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => next,
            };
            run.provider_wait += waiting.elapsed();
            let Ok(next) = next else {
                break Outcome::Failed("the provider stopped sending (idle timeout)".into());
            };
            let mut ended = None;
            let mut item = next;
            // Take everything that is already there: deltas coalesce into one batch.
            loop {
                match item {
                    None => {
                        ended = Some(Outcome::Completed);
                        break;
                    }
                    Some(Err(e)) => {
                        ended = Some(Outcome::Failed(e.to_string()));
                        break;
                    }
                    Some(Ok(event)) => step.absorb(event, &mut run.call_ids),
                }
                match stream.next().now_or_never() {
                    Some(next) => item = next,
                    None => break,
                }
            }
            let had_chunks = !step.pending.is_empty();
            if !run.flush(&mut step.pending).await {
                break Outcome::Lost;
            }
            if had_chunks && run.first_chunk {
                run.first_chunk = false;
                run.service
                    .metrics
                    .time_to_first_chunk
                    .observe(reply.received.elapsed());
            }
            if let Some(outcome) = ended {
                break outcome;
            }
        },
    };
    let outcome = match outcome {
        Outcome::Lost => Outcome::Lost,
        other if !run.flush(&mut step.pending).await => {
            drop(other);
            Outcome::Lost
        }
        other => other,
    };
    StepEnd {
        outcome,
        usage: step.usage,
        finish_reason: step.finish_reason,
        thinking: step.signature.map(|signature| crate::providers::Thinking {
            text: step.reasoning,
            signature,
        }),
        text: step.text,
        calls: step.calls,
    }
}

fn provider_usage(u: crate::providers::Usage) -> TokenUsage {
    TokenUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        reasoning_tokens: u.reasoning_tokens,
        cached_input_tokens: u.cached_input_tokens,
    }
}

fn add_usage(total: &mut TokenUsage, step: TokenUsage) {
    total.input_tokens += step.input_tokens;
    total.output_tokens += step.output_tokens;
    total.reasoning_tokens += step.reasoning_tokens;
    total.cached_input_tokens += step.cached_input_tokens;
}

enum Outcome {
    Completed,
    Failed(String),
    Stopped,
    /// The log could not be written: the reply is left for recovery to mark interrupted.
    Lost,
}

async fn end(
    service: &Arc<ChatService>,
    reply: &StartReply,
    run: &Run,
    outcome: Outcome,
    title: Option<Title>,
) {
    let status = match outcome {
        Outcome::Completed => GenerationStatus::Completed,
        Outcome::Failed(_) => GenerationStatus::Failed,
        Outcome::Stopped => GenerationStatus::Stopped,
        Outcome::Lost => {
            // The log refused a write: try to end the reply as interrupted (at the next free
            // sequence) so the thread is not left blocked; recovery retries if this fails too.
            service.finished(&run.id);
            interrupt(service, &run.id, reply.origin.thread_id()).await;
            return;
        }
    };
    if let Some(thread_id) = reply.origin.thread_id() {
        service
            .finish_on_thread(thread_id, &run.id, status, title, &reply.meta)
            .await;
    }
    service.finished(&run.id);
}

/// The title of a thread from its first message when no model writes titles
/// (`THREADLINE_TITLE_MODEL` unset): its first words, recorded with the reply's end.
fn quick_title(first_message: &str) -> Option<Title> {
    if std::env::var_os("THREADLINE_TITLE_MODEL").is_some() {
        return None;
    }
    Title::parse(&first_words(first_message)).ok()
}

/// Titles the thread after its first exchange with the title model.
async fn title_thread(service: &Arc<ChatService>, reply: &StartReply) {
    if let Some(thread_id) = reply.origin.thread_id() {
        let title = generate_title(service, &reply.first_user_text).await;
        if let Ok(title) = Title::parse(&title) {
            let result = service
                .bus
                .execute::<Thread>(
                    thread_id,
                    ThreadCommand::Rename {
                        title,
                        source: TitleSource::Generated,
                        at: Utc::now(),
                    },
                    &reply.meta,
                )
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot title the thread");
            }
            service.committed();
        }
    }
}

/// What one model call has streamed so far.
#[derive(Debug)]
struct StepState {
    /// Chunks not yet durable.
    pending: Vec<Chunk>,
    usage: TokenUsage,
    finish_reason: String,
    text: String,
    reasoning: String,
    signature: Option<String>,
    calls: Vec<PendingCall>,
}

impl Default for StepState {
    fn default() -> Self {
        StepState {
            pending: Vec::new(),
            usage: TokenUsage::default(),
            finish_reason: "stop".to_owned(),
            text: String::new(),
            reasoning: String::new(),
            signature: None,
            calls: Vec::new(),
        }
    }
}

impl StepState {
    /// Takes one provider event: deltas coalesce into the pending chunks; tool calls get an id
    /// unique within the reply (`used` holds the reply's ids so far).
    fn absorb(&mut self, event: ProviderEvent, used: &mut HashSet<String>) {
        let pending = &mut self.pending;
        match event {
            ProviderEvent::TextDelta { text } => {
                self.text.push_str(&text);
                match pending.last_mut() {
                    Some(Chunk::Text { text: last }) => last.push_str(&text),
                    _ => pending.push(Chunk::Text { text }),
                }
            }
            ProviderEvent::ReasoningDelta { text } => {
                self.reasoning.push_str(&text);
                match pending.last_mut() {
                    Some(Chunk::Reasoning { text: last }) => last.push_str(&text),
                    _ => pending.push(Chunk::Reasoning { text }),
                }
            }
            ProviderEvent::ReasoningSignature { signature } => self.signature = Some(signature),
            ProviderEvent::ToolCallStart { index, id, name } => {
                let mut unique = id.clone();
                let mut n = 1;
                while !used.insert(unique.clone()) {
                    n += 1;
                    unique = format!("{id}-{n}");
                }
                pending.push(Chunk::ToolInputStart {
                    tool_call_id: unique.clone(),
                    tool_name: name.clone(),
                });
                self.calls.push(PendingCall {
                    index,
                    id: unique,
                    provider_id: id,
                    name,
                    arguments: String::new(),
                    signature: None,
                });
            }
            ProviderEvent::ToolCallDelta { index, arguments } => {
                let Some(call) = self.calls.iter_mut().rev().find(|c| c.index == index) else {
                    tracing::debug!(index, "arguments of a tool call that never started");
                    return;
                };
                call.arguments.push_str(&arguments);
                match pending.last_mut() {
                    Some(Chunk::ToolInputDelta {
                        tool_call_id,
                        delta,
                    }) if *tool_call_id == call.id => delta.push_str(&arguments),
                    _ => pending.push(Chunk::ToolInputDelta {
                        tool_call_id: call.id.clone(),
                        delta: arguments,
                    }),
                }
            }
            ProviderEvent::ToolCallSignature { index, signature } => {
                if let Some(call) = self.calls.iter_mut().rev().find(|c| c.index == index) {
                    call.signature = Some(signature);
                }
            }
            ProviderEvent::Usage { usage: u } => self.usage = provider_usage(u),
            ProviderEvent::Finish { reason } => self.finish_reason = reason.as_str().to_owned(),
        }
    }
}

/// Opens the provider stream, retrying failures before the first token with backoff that
/// honours the provider's `retry-after`, then trying the model's fallback providers in order.
async fn open_stream(
    service: &ChatService,
    reply: &StartReply,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    tokio::time::timeout(OPEN_DEADLINE, open_with_fallbacks(service, reply, request))
        .await
        .unwrap_or_else(|_| {
            Err(ProviderError::Timeout(format!(
                "no stream from the provider within {}s",
                OPEN_DEADLINE.as_secs()
            )))
        })
}

async fn open_with_fallbacks(
    service: &ChatService,
    reply: &StartReply,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    let mut result = open_with_retries(service, &reply.model.provider, request).await;
    for (provider, upstream) in &reply.model.fallbacks {
        match &result {
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, fallback = provider.name(), "provider failed; trying a fallback");
                let request = ChatRequest {
                    model: upstream.clone(),
                    messages: request.messages.clone(),
                    tools: request.tools.clone(),
                    ..Default::default()
                };
                result = open_with_retries(service, provider, &request).await;
            }
            _ => break,
        }
    }
    result
}

async fn open_with_retries(
    service: &ChatService,
    provider: &crate::providers::Provider,
    request: &ChatRequest,
) -> Result<ProviderStream, ProviderError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match provider.stream(&service.http, request).await {
            Ok(stream) => return Ok(stream),
            Err(e) if e.is_retryable() && attempt < PROVIDER_ATTEMPTS => {
                let backoff = Duration::from_millis(250 * 2u64.pow(attempt - 1));
                let wait = match &e {
                    ProviderError::Http {
                        retry_after: Some(d),
                        ..
                    } => *d,
                    _ => backoff,
                }
                .min(Duration::from_secs(10));
                tracing::info!(error = %e, attempt, ?wait, "provider call failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A title for a thread from its first message: a cheap model's summary when
/// `THREADLINE_TITLE_MODEL` names one, else the message's first words.
async fn generate_title(service: &ChatService, first_message: &str) -> String {
    let fallback = first_words(first_message);
    let Ok(id) = std::env::var("THREADLINE_TITLE_MODEL") else {
        return fallback;
    };
    let spec = threadline_projections::catalog::get(&service.db, &id)
        .await
        .ok()
        .flatten();
    let Some(model) = spec.and_then(|spec| service.registry.from_catalog(&id, &spec)) else {
        return fallback;
    };
    let request = ChatRequest {
        model: model.upstream.clone(),
        messages: vec![
            ChatMessage {
                role: "system".into(),
                content: "Write a short title (at most 6 words) for a chat that starts with the \
                          user's message. Answer with the title only."
                    .into(),
                parts: Vec::new(),
                ..Default::default()
            },
            ChatMessage {
                role: "user".into(),
                content: first_message.to_owned(),
                parts: Vec::new(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let collect = async {
        let mut stream = model.provider.stream(&service.http, &request).await.ok()?;
        let mut text = String::new();
        while let Some(Ok(event)) = stream.next().await {
            if let ProviderEvent::TextDelta { text: t } = event {
                text.push_str(&t);
            }
        }
        Some(text)
    };
    match tokio::time::timeout(Duration::from_secs(10), collect).await {
        Ok(Some(text)) if !text.trim().is_empty() => first_words(text.trim().trim_matches('"')),
        _ => fallback,
    }
}

/// The first words of `text`, at most 80 characters, on one line.
pub fn first_words(text: &str) -> String {
    let mut title = String::new();
    for word in text.split_whitespace() {
        let extra = if title.is_empty() { 0 } else { 1 } + word.chars().count();
        if title.chars().count() + extra > TITLE_MAX_CHARS {
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.is_empty() {
        title = text
            .chars()
            .filter(|c| !c.is_control())
            .take(TITLE_MAX_CHARS)
            .collect();
    }
    if title.trim().is_empty() {
        "New chat".to_owned()
    } else {
        title
    }
}

/// Marks a reply of a dead node interrupted (and frees its thread, when it has one). Appends at
/// the stream's next sequence, so it loses (returns false) if the original writer is in fact
/// still appending.
pub async fn interrupt(
    service: &ChatService,
    generation_id: &str,
    thread_id: Option<&str>,
) -> bool {
    let next: Result<Option<i64>, sqlx::Error> = threadline_projections::on_read!(&service.db, pool =>
        sqlx::query_scalar(
            "SELECT MAX(sequence) FROM events WHERE aggregate_type = 'Generation' AND aggregate_id = $1",
        )
        .bind(generation_id)
        .fetch_one(pool)
        .await);
    let Ok(Some(last)) = next else { return false };
    let meta = CommandMeta::system();
    let event = GenerationEvent::GenerationInterrupted { at: Utc::now() };
    if let Err(e) = service
        .append(generation_id, last + 1, &[event], &metadata(&meta))
        .await
    {
        tracing::debug!(error = %e, generation_id, "interrupt lost the race");
        return false;
    }
    service.committed();
    // Its node died holding the reservation: charged if anything was streamed (events after
    // `GenerationStarted`), given back otherwise.
    match threadline_projections::usage::open_reservations(&service.db, generation_id).await {
        Ok(open) => {
            let charges = open
                .into_iter()
                .map(|(stream_id, meter, amount)| crate::ledger::Charge {
                    stream_id,
                    meter: threadline_domain::plans::Meter::parse(&meter)
                        .unwrap_or(threadline_domain::plans::Meter::Credits),
                    amount: amount.max(0) as u64,
                })
                .collect();
            let reservation = super::Reservation { charges };
            let charged = (last > 1).then_some(None);
            service
                .close_reservation(&reservation, generation_id, charged, &meta)
                .await;
        }
        Err(e) => tracing::warn!(error = %e, generation_id, "cannot read the reply's reservations"),
    }
    if let Some(thread_id) = thread_id {
        service
            .finish_on_thread(
                thread_id,
                generation_id,
                GenerationStatus::Interrupted,
                None,
                &meta,
            )
            .await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_words_up_to_80_characters() {
        assert_eq!(
            first_words("  What is   the capital of France? "),
            "What is the capital of France?"
        );
        let long = "word ".repeat(40);
        let title = first_words(&long);
        assert!(title.chars().count() <= 80 && title.starts_with("word word"));
        assert_eq!(first_words("   "), "New chat");
        assert_eq!(first_words(&"x".repeat(100)).chars().count(), 80);
    }

    #[test]
    fn consecutive_deltas_coalesce_into_one_chunk() {
        let mut step = StepState::default();
        let mut used = HashSet::new();
        for t in ["a", "b", "c"] {
            step.absorb(ProviderEvent::TextDelta { text: t.into() }, &mut used);
        }
        step.absorb(
            ProviderEvent::ReasoningDelta { text: "r".into() },
            &mut used,
        );
        assert_eq!(
            step.pending,
            vec![
                Chunk::Text { text: "abc".into() },
                Chunk::Reasoning { text: "r".into() }
            ]
        );
        assert_eq!(step.text, "abc");
    }

    #[test]
    fn tool_calls_collect_their_arguments_and_get_ids_unique_in_the_reply() {
        let mut used = HashSet::from(["call_0".to_owned()]);
        let mut step = StepState::default();
        let start = |index: u32, id: &str| ProviderEvent::ToolCallStart {
            index,
            id: id.into(),
            name: "web_search".into(),
        };
        let delta = |index: u32, arguments: &str| ProviderEvent::ToolCallDelta {
            index,
            arguments: arguments.into(),
        };
        step.absorb(start(0, "call_0"), &mut used);
        step.absorb(start(1, "call_1"), &mut used);
        step.absorb(delta(0, "{\"query\":"), &mut used);
        step.absorb(delta(0, "\"rust\"}"), &mut used);
        step.absorb(delta(1, "{}"), &mut used);
        step.absorb(
            ProviderEvent::ToolCallSignature {
                index: 1,
                signature: "s".into(),
            },
            &mut used,
        );
        // An earlier step used `call_0`: this one is `call_0-2` in the reply, and keeps the
        // provider's id for the result.
        assert_eq!(step.calls[0].id, "call_0-2");
        assert_eq!(step.calls[0].provider_id, "call_0");
        assert_eq!(step.calls[0].arguments, "{\"query\":\"rust\"}");
        assert_eq!(step.calls[1].id, "call_1");
        assert_eq!(step.calls[1].signature.as_deref(), Some("s"));
        assert_eq!(
            step.pending[2..],
            [
                Chunk::ToolInputDelta {
                    tool_call_id: "call_0-2".into(),
                    delta: "{\"query\":\"rust\"}".into()
                },
                Chunk::ToolInputDelta {
                    tool_call_id: "call_1".into(),
                    delta: "{}".into()
                },
            ]
        );
    }
}
