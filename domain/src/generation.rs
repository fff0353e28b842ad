//! The `Generation` aggregate: one assistant reply, from the context sent to the model to its
//! last token chunk and how it ended.
//!
//! A generation has exactly one writer: the task on the node that runs it. That task keeps the
//! aggregate in memory and appends its events with known sequence numbers (see
//! `src/chat/writer.rs`), so appending chunk batch 10,000 costs what batch 10 costs: nothing
//! is replayed. Everything else (the thread, stop requests, resumes) only reads this stream.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A message of the exact context sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextMessage {
    pub role: String,
    pub content: String,
}

/// One durable piece of a reply. Each chunk has an index (its position in the reply),
/// assigned in order by the aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Chunk {
    Text {
        text: String,
    },
    Reasoning {
        text: String,
    },
    ToolInputStart {
        tool_call_id: String,
        tool_name: String,
    },
    ToolInputDelta {
        tool_call_id: String,
        delta: String,
    },
    /// A tool call's whole input, once the model finished writing it: the arguments as JSON
    /// (their text as a string when they were not JSON).
    ToolInputAvailable {
        tool_call_id: String,
        tool_name: String,
        input: serde_json::Value,
    },
    /// What a tool call returned (the model receives it in the next step).
    ToolOutput {
        tool_call_id: String,
        output: serde_json::Value,
    },
    /// A tool call that failed; the model receives the error as the call's result.
    ToolError {
        tool_call_id: String,
        error_text: String,
    },
    /// A step of a multi-step reply ended (its tools ran) and the next begins: the step's
    /// token usage as the provider reported it and why the model stopped.
    StepFinished {
        usage: TokenUsage,
        finish_reason: String,
    },
    /// A data part of the reply (`data-{name}` in the UI stream), such as research progress.
    Data {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        data: serde_json::Value,
    },
}

/// The account a reply is charged to, and its tier when the reply started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub account_id: String,
    pub tier: crate::catalog::Tier,
}

/// Token counts as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_input_tokens: u64,
}

/// How a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    Completed,
    Failed,
    Stopped,
    Interrupted,
}

impl GenerationStatus {
    /// The status as stored and shown (`completed`, `failed`, `stopped`, `interrupted`).
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Completed => "completed",
            GenerationStatus::Failed => "failed",
            GenerationStatus::Stopped => "stopped",
            GenerationStatus::Interrupted => "interrupted",
        }
    }
}

/// What a reply answers: a user message in a thread, or a call of the API with no thread
/// (the context is then the caller's whole conversation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A reply in thread `thread_id` to its user message `parent_id`.
    Thread {
        thread_id: String,
        parent_id: String,
    },
    /// A stateless call of the OpenAI-compatible API.
    Api,
}

impl Origin {
    /// The thread the reply belongs to, if any.
    pub fn thread_id(&self) -> Option<&str> {
        match self {
            Origin::Thread { thread_id, .. } => Some(thread_id),
            Origin::Api => None,
        }
    }
}

/// The version of `GenerationStarted` since which the reply's thread and parent are its
/// [`Origin`] (before, they were the event's own `thread_id` and `parent_id`; the upcaster
/// in `upcast.rs` moves them).
pub const ORIGIN_SINCE: &str = "3.0";

/// Commands of a generation (issued by its writer).
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationCommand {
    Start {
        /// The assistant message this reply fills.
        message_id: String,
        /// What it answers.
        origin: Origin,
        model: String,
        provider: String,
        context: Vec<ContextMessage>,
        /// The node running the generation (for crash recovery).
        node_id: String,
        /// Whose plan pays for the reply (for usage reports).
        charged_to: Option<Payer>,
        at: DateTime<Utc>,
    },
    AppendChunks {
        chunks: Vec<Chunk>,
    },
    Complete {
        finish_reason: String,
        usage: TokenUsage,
        /// Milliseconds spent waiting on the provider (first byte to last).
        provider_ms: u64,
        /// What the tokens cost at the catalog's prices, in micro-dollars.
        cost_micros: u64,
        at: DateTime<Utc>,
    },
    Fail {
        error: String,
        at: DateTime<Utc>,
    },
    Stop {
        at: DateTime<Utc>,
    },
    Interrupt {
        at: DateTime<Utc>,
    },
}

/// Events of the `Generation` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GenerationEvent {
    GenerationStarted {
        /// The assistant message this reply fills.
        message_id: String,
        origin: Origin,
        model: String,
        provider: String,
        context: Vec<ContextMessage>,
        node_id: String,
        /// Absent in events written before usage reports.
        #[serde(default)]
        charged_to: Option<Payer>,
        at: DateTime<Utc>,
    },
    ChunksAppended {
        /// Index of the first chunk; the others follow in order.
        first_index: u64,
        chunks: Vec<Chunk>,
    },
    GenerationCompleted {
        finish_reason: String,
        usage: TokenUsage,
        provider_ms: u64,
        /// Micro-dollars at the catalog's prices (absent in events written before prices).
        #[serde(default)]
        cost_micros: u64,
        at: DateTime<Utc>,
    },
    GenerationFailed {
        error: String,
        at: DateTime<Utc>,
    },
    GenerationStopped {
        at: DateTime<Utc>,
    },
    GenerationInterrupted {
        at: DateTime<Utc>,
    },
}

impl GenerationEvent {
    /// When this event ended the generation, if it is terminal.
    pub fn terminal_at(&self) -> Option<DateTime<Utc>> {
        match self {
            GenerationEvent::GenerationCompleted { at, .. }
            | GenerationEvent::GenerationFailed { at, .. }
            | GenerationEvent::GenerationStopped { at }
            | GenerationEvent::GenerationInterrupted { at } => Some(*at),
            GenerationEvent::GenerationStarted { .. } | GenerationEvent::ChunksAppended { .. } => {
                None
            }
        }
    }

    /// The status this event ends the generation with, if it is terminal.
    pub fn terminal_status(&self) -> Option<GenerationStatus> {
        match self {
            GenerationEvent::GenerationCompleted { .. } => Some(GenerationStatus::Completed),
            GenerationEvent::GenerationFailed { .. } => Some(GenerationStatus::Failed),
            GenerationEvent::GenerationStopped { .. } => Some(GenerationStatus::Stopped),
            GenerationEvent::GenerationInterrupted { .. } => Some(GenerationStatus::Interrupted),
            GenerationEvent::GenerationStarted { .. } | GenerationEvent::ChunksAppended { .. } => {
                None
            }
        }
    }
}

impl DomainEvent for GenerationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::GenerationStarted { .. } => "GenerationStarted",
            Self::ChunksAppended { .. } => "ChunksAppended",
            Self::GenerationCompleted { .. } => "GenerationCompleted",
            Self::GenerationFailed { .. } => "GenerationFailed",
            Self::GenerationStopped { .. } => "GenerationStopped",
            Self::GenerationInterrupted { .. } => "GenerationInterrupted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::GenerationStarted { .. } => ORIGIN_SINCE,
            _ => crate::personal::SEALED_SINCE,
        }
        .to_owned()
    }
}

/// Why a generation command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    #[error("the generation was already started")]
    AlreadyStarted,
    #[error("the generation has not started")]
    NotStarted,
    #[error("the generation has already ended")]
    AlreadyEnded,
    #[error("a chunk batch must not be empty")]
    EmptyBatch,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
enum State {
    #[default]
    New,
    Running,
    Ended(GenerationStatus),
}

/// The `Generation` aggregate's state: the next chunk index and whether it is running.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    state: State,
    next_index: u64,
}

impl Generation {
    /// Decides the events of a command (pure; the writer calls this without the event store).
    pub fn decide(
        &self,
        command: GenerationCommand,
    ) -> Result<Vec<GenerationEvent>, GenerationError> {
        use GenerationCommand as C;
        use GenerationEvent as E;
        match (self.state, command) {
            (
                State::New,
                C::Start {
                    message_id,
                    origin,
                    model,
                    provider,
                    context,
                    node_id,
                    charged_to,
                    at,
                },
            ) => Ok(vec![E::GenerationStarted {
                message_id,
                origin,
                model,
                provider,
                context,
                node_id,
                charged_to,
                at,
            }]),
            (_, C::Start { .. }) => Err(GenerationError::AlreadyStarted),
            (State::New, _) => Err(GenerationError::NotStarted),
            (State::Ended(_), _) => Err(GenerationError::AlreadyEnded),
            (State::Running, C::AppendChunks { chunks }) => {
                if chunks.is_empty() {
                    return Err(GenerationError::EmptyBatch);
                }
                Ok(vec![E::ChunksAppended {
                    first_index: self.next_index,
                    chunks,
                }])
            }
            (
                State::Running,
                C::Complete {
                    finish_reason,
                    usage,
                    provider_ms,
                    cost_micros,
                    at,
                },
            ) => Ok(vec![E::GenerationCompleted {
                finish_reason,
                usage,
                provider_ms,
                cost_micros,
                at,
            }]),
            (State::Running, C::Fail { error, at }) => Ok(vec![E::GenerationFailed { error, at }]),
            (State::Running, C::Stop { at }) => Ok(vec![E::GenerationStopped { at }]),
            (State::Running, C::Interrupt { at }) => Ok(vec![E::GenerationInterrupted { at }]),
        }
    }

    /// Applies an event (the same fold cqrs-es uses).
    pub fn fold(&mut self, event: &GenerationEvent) {
        match event {
            GenerationEvent::GenerationStarted { .. } => self.state = State::Running,
            GenerationEvent::ChunksAppended {
                first_index,
                chunks,
            } => {
                self.next_index = first_index + chunks.len() as u64;
            }
            other => {
                if let Some(status) = other.terminal_status() {
                    self.state = State::Ended(status);
                }
            }
        }
    }

    /// Whether the generation is still running.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// Index the next chunk will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

impl crate::personal::DataSubject for Generation {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
    }
}

impl Aggregate for Generation {
    const TYPE: &'static str = "Generation";
    type Command = GenerationCommand;
    type Event = GenerationEvent;
    type Error = GenerationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.fold(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type GenerationTest = TestFramework<Generation>;

    fn start() -> GenerationCommand {
        GenerationCommand::Start {
            message_id: "m2".into(),
            origin: Origin::Thread {
                thread_id: "t".into(),
                parent_id: "m1".into(),
            },
            model: "echo".into(),
            provider: "echo".into(),
            context: vec![ContextMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            node_id: "n".into(),
            charged_to: None,
            at: DateTime::UNIX_EPOCH,
        }
    }

    fn started() -> GenerationEvent {
        GenerationEvent::GenerationStarted {
            message_id: "m2".into(),
            origin: Origin::Thread {
                thread_id: "t".into(),
                parent_id: "m1".into(),
            },
            model: "echo".into(),
            provider: "echo".into(),
            context: vec![ContextMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            node_id: "n".into(),
            charged_to: None,
            at: DateTime::UNIX_EPOCH,
        }
    }

    fn text(s: &str) -> Chunk {
        Chunk::Text { text: s.into() }
    }

    fn appended(first_index: u64, n: usize) -> GenerationEvent {
        GenerationEvent::ChunksAppended {
            first_index,
            chunks: (0..n).map(|i| text(&format!("c{i}"))).collect(),
        }
    }

    #[test]
    fn a_generation_starts_with_its_exact_context() {
        GenerationTest::with(())
            .given_no_previous_events()
            .when(start())
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn a_generation_starts_once() {
        GenerationTest::with(())
            .given(vec![started()])
            .when(start())
            .then_expect_error(GenerationError::AlreadyStarted);
    }

    #[test]
    fn chunk_batches_get_consecutive_indices() {
        GenerationTest::with(())
            .given(vec![started(), appended(0, 3)])
            .when(GenerationCommand::AppendChunks {
                chunks: vec![text("x"), text("y")],
            })
            .then_expect_events(vec![GenerationEvent::ChunksAppended {
                first_index: 3,
                chunks: vec![text("x"), text("y")],
            }]);
    }

    #[test]
    fn an_empty_batch_or_chunks_before_start_are_refused() {
        GenerationTest::with(())
            .given(vec![started()])
            .when(GenerationCommand::AppendChunks { chunks: vec![] })
            .then_expect_error(GenerationError::EmptyBatch);
        GenerationTest::with(())
            .given_no_previous_events()
            .when(GenerationCommand::AppendChunks {
                chunks: vec![text("x")],
            })
            .then_expect_error(GenerationError::NotStarted);
    }

    #[test]
    fn a_running_generation_completes_fails_stops_or_is_interrupted() {
        let at = DateTime::UNIX_EPOCH;
        let cases = [
            (
                GenerationCommand::Complete {
                    finish_reason: "stop".into(),
                    usage: TokenUsage::default(),
                    provider_ms: 5,
                    cost_micros: 7,
                    at,
                },
                GenerationEvent::GenerationCompleted {
                    finish_reason: "stop".into(),
                    usage: TokenUsage::default(),
                    provider_ms: 5,
                    cost_micros: 7,
                    at,
                },
            ),
            (
                GenerationCommand::Fail {
                    error: "boom".into(),
                    at,
                },
                GenerationEvent::GenerationFailed {
                    error: "boom".into(),
                    at,
                },
            ),
            (
                GenerationCommand::Stop { at },
                GenerationEvent::GenerationStopped { at },
            ),
            (
                GenerationCommand::Interrupt { at },
                GenerationEvent::GenerationInterrupted { at },
            ),
        ];
        for (command, event) in cases {
            GenerationTest::with(())
                .given(vec![started(), appended(0, 1)])
                .when(command)
                .then_expect_events(vec![event]);
        }
    }

    #[test]
    fn nothing_follows_the_end_of_a_generation() {
        GenerationTest::with(())
            .given(vec![
                started(),
                GenerationEvent::GenerationStopped {
                    at: DateTime::UNIX_EPOCH,
                },
            ])
            .when(GenerationCommand::AppendChunks {
                chunks: vec![text("late")],
            })
            .then_expect_error(GenerationError::AlreadyEnded);
    }

    #[test]
    fn the_next_index_does_not_depend_on_replaying_chunks_one_by_one() {
        let mut g = Generation::default();
        g.fold(&started());
        g.fold(&appended(0, 10_000));
        assert_eq!(g.next_index(), 10_000);
        assert!(g.is_running());
    }

    /// A tool step's chunks: the call's whole input, its result or error, the step boundary
    /// and a data part.
    fn tool_step() -> Vec<Chunk> {
        vec![
            Chunk::ToolInputAvailable {
                tool_call_id: "c1".into(),
                tool_name: "web_search".into(),
                input: serde_json::json!({"query": "rust"}),
            },
            Chunk::ToolOutput {
                tool_call_id: "c1".into(),
                output: serde_json::json!([{"url": "https://example.com"}]),
            },
            Chunk::ToolError {
                tool_call_id: "c2".into(),
                error_text: "down".into(),
            },
            Chunk::StepFinished {
                usage: TokenUsage {
                    input_tokens: 3,
                    output_tokens: 5,
                    ..TokenUsage::default()
                },
                finish_reason: "tool-calls".into(),
            },
            Chunk::Data {
                name: "research-start".into(),
                id: None,
                data: serde_json::json!({"question": "q"}),
            },
        ]
    }

    #[test]
    fn a_tool_step_is_one_batch_of_chunks_with_consecutive_indices() {
        GenerationTest::with(())
            .given(vec![started(), appended(0, 2)])
            .when(GenerationCommand::AppendChunks {
                chunks: tool_step(),
            })
            .then_expect_events(vec![GenerationEvent::ChunksAppended {
                first_index: 2,
                chunks: tool_step(),
            }]);
        let mut g = Generation::default();
        g.fold(&started());
        g.fold(&GenerationEvent::ChunksAppended {
            first_index: 0,
            chunks: tool_step(),
        });
        assert_eq!(g.next_index(), 5);
    }

    #[test]
    fn tool_chunks_are_stored_in_a_stable_shape_and_read_back() {
        let stored = serde_json::to_value(tool_step()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!([
                {"type": "tool_input_available", "tool_call_id": "c1", "tool_name": "web_search",
                 "input": {"query": "rust"}},
                {"type": "tool_output", "tool_call_id": "c1", "output": [{"url": "https://example.com"}]},
                {"type": "tool_error", "tool_call_id": "c2", "error_text": "down"},
                {"type": "step_finished", "finish_reason": "tool-calls", "usage": {
                    "input_tokens": 3, "output_tokens": 5, "reasoning_tokens": 0,
                    "cached_input_tokens": 0}},
                {"type": "data", "name": "research-start", "data": {"question": "q"}},
            ])
        );
        let read: Vec<Chunk> = serde_json::from_value(stored).unwrap();
        assert_eq!(read, tool_step());
        // Batches written before tools read as they always did.
        let old: Vec<Chunk> = serde_json::from_str(
            r#"[{"type":"text","text":"a"},{"type":"tool_input_start","tool_call_id":"c","tool_name":"f"}]"#,
        )
        .unwrap();
        assert_eq!(old[0], text("a"));
    }
}
