//! Renders a generation's events as the AI SDK UI message stream (v1) parts.
//!
//! Rendering is a deterministic fold over the stream's events, so every reader — live, resumed
//! or replaying a finished reply — produces the same parts with the same SSE ids. The id of a
//! part is `"{sequence}.{k}"`: the sequence of the generation event it came from and its place
//! among that event's parts. `Last-Event-ID: s.k` resumes right after that part.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use threadline_domain::generation::{Chunk, GenerationEvent};

/// One SSE event of the UI message stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// SSE `id:`: `"{sequence}.{k}"`.
    pub id: PartId,
    pub json: Value,
}

/// Where a part sits: (generation event sequence, index among that event's parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartId(pub i64, pub usize);

impl PartId {
    /// Most parts one generation event renders (a chunk batch's deltas): larger indexes were
    /// never issued.
    pub const MAX_INDEX: usize = 100_000;

    /// Parses `"s.k"` (as sent back in `Last-Event-ID`): unsigned numbers, `s` ≥ 1.
    pub fn parse(s: &str) -> Option<Self> {
        let (seq, k) = s.trim().split_once('.')?;
        let (seq, k) = (
            crate::store::log::unsigned(seq)?,
            crate::store::log::unsigned(k)?,
        );
        let k = usize::try_from(k).ok().filter(|k| *k <= Self::MAX_INDEX)?;
        (seq >= 1).then_some(Self(seq, k))
    }
}

impl std::fmt::Display for PartId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    Text,
    Reasoning,
}

/// The renderer's memory between events: which block is open, the tool calls seen.
#[derive(Debug, Default)]
pub struct Renderer {
    open: Option<Open>,
    blocks: usize,
    /// Tool call id → (name, accumulated input JSON text), in order of appearance.
    tools: BTreeMap<String, (usize, String, String)>,
    done: bool,
}

impl Renderer {
    /// Whether the stream has ended (a terminal event was rendered).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The parts of the generation event at `sequence`.
    pub fn render(&mut self, sequence: i64, event: &GenerationEvent) -> Vec<Part> {
        let mut parts = Vec::new();
        match event {
            GenerationEvent::GenerationStarted {
                message_id, model, ..
            } => {
                parts.push(json!({
                    "type": "start",
                    "messageId": message_id,
                    "messageMetadata": {"model": model},
                }));
                parts.push(json!({"type": "start-step"}));
                self.open = Some(Open::Nothing);
            }
            GenerationEvent::ChunksAppended { chunks, .. } => {
                for chunk in chunks {
                    self.chunk(chunk, &mut parts);
                }
            }
            GenerationEvent::GenerationCompleted { finish_reason, .. } => {
                self.close(&mut parts);
                self.tools_available(&mut parts);
                parts.push(json!({"type": "finish-step"}));
                parts.push(json!({"type": "finish", "finishReason": finish_reason}));
                self.done = true;
            }
            GenerationEvent::GenerationFailed { error, .. } => {
                self.close(&mut parts);
                parts.push(json!({"type": "error", "errorText": error}));
                self.done = true;
            }
            GenerationEvent::GenerationStopped { .. } => {
                self.close(&mut parts);
                parts.push(json!({"type": "finish-step"}));
                parts.push(json!({"type": "abort", "reason": "stopped"}));
                self.done = true;
            }
            GenerationEvent::GenerationInterrupted { .. } => {
                self.close(&mut parts);
                parts.push(json!({
                    "type": "error",
                    "errorText": "the reply was interrupted: the server running it stopped",
                }));
                self.done = true;
            }
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(k, json)| Part {
                id: PartId(sequence, k),
                json,
            })
            .collect()
    }

    fn block_id(&self, kind: Open) -> String {
        match kind {
            Open::Reasoning => format!("reasoning-{}", self.blocks),
            _ => format!("text-{}", self.blocks),
        }
    }

    fn chunk(&mut self, chunk: &Chunk, parts: &mut Vec<Value>) {
        match chunk {
            Chunk::Text { text } => self.delta(Open::Text, text, parts),
            Chunk::Reasoning { text } => self.delta(Open::Reasoning, text, parts),
            Chunk::ToolInputStart {
                tool_call_id,
                tool_name,
            } => {
                self.close(parts);
                let order = self.tools.len();
                self.tools.insert(
                    tool_call_id.clone(),
                    (order, tool_name.clone(), String::new()),
                );
                parts.push(json!({
                    "type": "tool-input-start",
                    "toolCallId": tool_call_id,
                    "toolName": tool_name,
                    "dynamic": true,
                }));
            }
            Chunk::ToolInputDelta {
                tool_call_id,
                delta,
            } => {
                if let Some((_, _, input)) = self.tools.get_mut(tool_call_id) {
                    input.push_str(delta);
                }
                parts.push(json!({
                    "type": "tool-input-delta",
                    "toolCallId": tool_call_id,
                    "inputTextDelta": delta,
                }));
            }
            Chunk::ToolInputAvailable {
                tool_call_id,
                tool_name,
                input,
            } => {
                self.close(parts);
                // Announced: the end of the reply does not announce it again.
                self.tools.remove(tool_call_id);
                parts.push(json!({
                    "type": "tool-input-available",
                    "toolCallId": tool_call_id,
                    "toolName": tool_name,
                    "input": input,
                    "dynamic": true,
                }));
            }
            Chunk::ToolOutput {
                tool_call_id,
                output,
            } => parts.push(json!({
                "type": "tool-output-available",
                "toolCallId": tool_call_id,
                "output": output,
                "dynamic": true,
            })),
            Chunk::ToolError {
                tool_call_id,
                error_text,
            } => parts.push(json!({
                "type": "tool-output-error",
                "toolCallId": tool_call_id,
                "errorText": error_text,
                "dynamic": true,
            })),
            Chunk::StepFinished { .. } => {
                self.close(parts);
                parts.push(json!({"type": "finish-step"}));
                parts.push(json!({"type": "start-step"}));
            }
            Chunk::Data { name, id, data } => {
                let mut part = json!({"type": format!("data-{name}"), "data": data});
                if let (Some(id), Some(object)) = (id, part.as_object_mut()) {
                    object.insert("id".into(), Value::String(id.clone()));
                }
                parts.push(part);
            }
        }
    }

    fn delta(&mut self, kind: Open, text: &str, parts: &mut Vec<Value>) {
        if self.open != Some(kind) {
            self.close(parts);
            self.blocks += 1;
            let start = if kind == Open::Text {
                "text-start"
            } else {
                "reasoning-start"
            };
            parts.push(json!({"type": start, "id": self.block_id(kind)}));
            self.open = Some(kind);
        }
        let delta = if kind == Open::Text {
            "text-delta"
        } else {
            "reasoning-delta"
        };
        parts.push(json!({"type": delta, "id": self.block_id(kind), "delta": text}));
    }

    fn close(&mut self, parts: &mut Vec<Value>) {
        match self.open {
            Some(Open::Text) => {
                parts.push(json!({"type": "text-end", "id": self.block_id(Open::Text)}))
            }
            Some(Open::Reasoning) => {
                parts.push(json!({"type": "reasoning-end", "id": self.block_id(Open::Reasoning)}))
            }
            _ => {}
        }
        self.open = Some(Open::Nothing);
    }

    fn tools_available(&mut self, parts: &mut Vec<Value>) {
        let mut tools: Vec<_> = self.tools.iter().collect();
        tools.sort_by_key(|(_, (order, _, _))| *order);
        for (id, (_, name, input)) in tools {
            let input: Value = serde_json::from_str(input).unwrap_or(Value::String(input.clone()));
            parts.push(json!({
                "type": "tool-input-available",
                "toolCallId": id,
                "toolName": name,
                "input": input,
                "dynamic": true,
            }));
        }
    }
}

/// Formats one part as an SSE event.
pub fn sse_event(part: &Part) -> String {
    format!("id: {}\ndata: {}\n\n", part.id, part.json)
}

/// The last SSE event of every stream.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// A keep-alive comment.
pub const SSE_KEEPALIVE: &str = ": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use threadline_domain::generation::{Origin, TokenUsage};

    fn started() -> GenerationEvent {
        GenerationEvent::GenerationStarted {
            message_id: "a1".into(),
            origin: Origin::Thread {
                thread_id: "t".into(),
                parent_id: "m1".into(),
            },
            model: "echo".into(),
            provider: "echo".into(),
            context: vec![],
            node_id: "n".into(),
            charged_to: None,
            at: DateTime::UNIX_EPOCH,
        }
    }

    fn chunks(first_index: u64, chunks: Vec<Chunk>) -> GenerationEvent {
        GenerationEvent::ChunksAppended {
            first_index,
            chunks,
        }
    }

    fn text(s: &str) -> Chunk {
        Chunk::Text { text: s.into() }
    }

    fn render_all(events: &[GenerationEvent]) -> Vec<Part> {
        let mut r = Renderer::default();
        events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| r.render(i as i64 + 1, e))
            .collect()
    }

    #[test]
    fn a_plain_reply_renders_start_text_block_and_finish() {
        let parts = render_all(&[
            started(),
            chunks(0, vec![text("Hel"), text("lo")]),
            GenerationEvent::GenerationCompleted {
                finish_reason: "stop".into(),
                usage: TokenUsage::default(),
                provider_ms: 1,
                cost_micros: 0,
                at: DateTime::UNIX_EPOCH,
            },
        ]);
        let json: Vec<Value> = parts.iter().map(|p| p.json.clone()).collect();
        assert_eq!(
            json,
            vec![
                json!({"type": "start", "messageId": "a1", "messageMetadata": {"model": "echo"}}),
                json!({"type": "start-step"}),
                json!({"type": "text-start", "id": "text-1"}),
                json!({"type": "text-delta", "id": "text-1", "delta": "Hel"}),
                json!({"type": "text-delta", "id": "text-1", "delta": "lo"}),
                json!({"type": "text-end", "id": "text-1"}),
                json!({"type": "finish-step"}),
                json!({"type": "finish", "finishReason": "stop"}),
            ]
        );
        let ids: Vec<String> = parts.iter().map(|p| p.id.to_string()).collect();
        assert_eq!(
            ids,
            ["1.0", "1.1", "2.0", "2.1", "2.2", "3.0", "3.1", "3.2"]
        );
    }

    #[test]
    fn reasoning_then_text_closes_the_reasoning_block_first() {
        let parts = render_all(&[
            started(),
            chunks(0, vec![Chunk::Reasoning { text: "hmm".into() }, text("ok")]),
        ]);
        let types: Vec<&str> = parts
            .iter()
            .map(|p| p.json["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "start",
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-end",
                "text-start",
                "text-delta"
            ]
        );
    }

    #[test]
    fn a_stopped_reply_closes_its_block_and_aborts() {
        let parts = render_all(&[
            started(),
            chunks(0, vec![text("par")]),
            GenerationEvent::GenerationStopped {
                at: DateTime::UNIX_EPOCH,
            },
        ]);
        let types: Vec<&str> = parts
            .iter()
            .map(|p| p.json["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types[types.len() - 3..],
            ["text-end", "finish-step", "abort"]
        );
    }

    #[test]
    fn tool_calls_stream_their_input_and_end_available() {
        let parts = render_all(&[
            started(),
            chunks(
                0,
                vec![
                    Chunk::ToolInputStart {
                        tool_call_id: "c1".into(),
                        tool_name: "search".into(),
                    },
                    Chunk::ToolInputDelta {
                        tool_call_id: "c1".into(),
                        delta: "{\"q\":".into(),
                    },
                    Chunk::ToolInputDelta {
                        tool_call_id: "c1".into(),
                        delta: "\"rust\"}".into(),
                    },
                ],
            ),
            GenerationEvent::GenerationCompleted {
                finish_reason: "tool-calls".into(),
                usage: TokenUsage::default(),
                provider_ms: 1,
                cost_micros: 0,
                at: DateTime::UNIX_EPOCH,
            },
        ]);
        let available = parts
            .iter()
            .find(|p| p.json["type"] == "tool-input-available")
            .unwrap();
        assert_eq!(available.json["input"], json!({"q": "rust"}));
    }

    #[test]
    fn a_tool_step_renders_input_output_and_the_step_boundary_once() {
        let call = |id: &str| Chunk::ToolInputStart {
            tool_call_id: id.into(),
            tool_name: "web_search".into(),
        };
        let parts = render_all(&[
            started(),
            chunks(0, vec![text("let me look"), call("c1"), call("c2")]),
            chunks(
                3,
                vec![
                    Chunk::ToolInputAvailable {
                        tool_call_id: "c1".into(),
                        tool_name: "web_search".into(),
                        input: json!({"query": "a"}),
                    },
                    Chunk::ToolInputAvailable {
                        tool_call_id: "c2".into(),
                        tool_name: "web_search".into(),
                        input: json!({"query": "b"}),
                    },
                ],
            ),
            chunks(
                5,
                vec![
                    Chunk::ToolOutput {
                        tool_call_id: "c1".into(),
                        output: json!([{"url": "https://a"}]),
                    },
                    Chunk::ToolError {
                        tool_call_id: "c2".into(),
                        error_text: "down".into(),
                    },
                    Chunk::StepFinished {
                        usage: TokenUsage::default(),
                        finish_reason: "tool-calls".into(),
                    },
                    Chunk::Data {
                        name: "research-start".into(),
                        id: Some("r1".into()),
                        data: json!({"question": "q"}),
                    },
                    text("answer"),
                ],
            ),
            GenerationEvent::GenerationCompleted {
                finish_reason: "stop".into(),
                usage: TokenUsage::default(),
                provider_ms: 1,
                cost_micros: 0,
                at: DateTime::UNIX_EPOCH,
            },
        ]);
        let json: Vec<Value> = parts.iter().map(|p| p.json.clone()).collect();
        let types: Vec<&str> = json.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "start",
                "start-step",
                "text-start",
                "text-delta",
                "text-end",
                "tool-input-start",
                "tool-input-start",
                "tool-input-available",
                "tool-input-available",
                "tool-output-available",
                "tool-output-error",
                "finish-step",
                "start-step",
                "data-research-start",
                "text-start",
                "text-delta",
                "text-end",
                "finish-step",
                "finish",
            ],
            "announced inputs are not announced again at the end"
        );
        assert_eq!(
            json[9],
            json!({"type": "tool-output-available", "toolCallId": "c1",
                   "output": [{"url": "https://a"}], "dynamic": true})
        );
        assert_eq!(
            json[10],
            json!({"type": "tool-output-error", "toolCallId": "c2", "errorText": "down", "dynamic": true})
        );
        assert_eq!(
            json[13],
            json!({"type": "data-research-start", "id": "r1", "data": {"question": "q"}})
        );
        // The second step's text is a new block.
        assert_eq!(json[14]["id"], "text-2");
    }

    #[test]
    fn part_ids_parse_back() {
        assert_eq!(PartId::parse("12.3"), Some(PartId(12, 3)));
        for forged in ["x", "0.1", "-1.0", "3.-1", "3.99999999", "+3.1", "3.1.1"] {
            assert_eq!(PartId::parse(forged), None, "{forged}");
        }
        assert!(PartId(2, 0) > PartId(1, 9));
    }
}
