//! A generation's events in OpenAI's shapes: `chat.completion.chunk` objects as they stream,
//! and the whole `chat.completion` once the reply has ended. Pure, so tests drive it.

use serde_json::{Value, json};
use threadline_domain::catalog::UsageCounting;
use threadline_domain::generation::{Chunk, GenerationEvent, TokenUsage};

/// What a reply has been so far, and what its next chunks say.
pub struct Completion {
    /// `chatcmpl-` and the generation id.
    id: String,
    model: String,
    created: i64,
    counting: UsageCounting,
    text: String,
    reasoning: String,
    /// The tool calls in the order they started: id, name, arguments so far, and whether
    /// their arguments streamed as deltas.
    calls: Vec<Call>,
    ended: Option<Ended>,
    /// The first chunk (with the role) has been written.
    opened: bool,
}

struct Call {
    id: String,
    name: String,
    arguments: String,
    streamed: bool,
}

/// How the reply ended.
pub enum Ended {
    Finished {
        finish_reason: &'static str,
        usage: TokenUsage,
    },
    /// It failed (or was stopped or interrupted): the message for the caller.
    Failed(String),
}

impl Completion {
    pub fn new(generation_id: &str, model: &str, counting: UsageCounting) -> Self {
        Self {
            id: format!("chatcmpl-{generation_id}"),
            model: model.to_owned(),
            created: chrono::Utc::now().timestamp(),
            counting,
            text: String::new(),
            reasoning: String::new(),
            calls: Vec::new(),
            ended: None,
            opened: false,
        }
    }

    /// How the reply ended, once it has.
    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// Whether anything of the answer has arrived (text, reasoning or a tool call).
    pub fn has_output(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.calls.is_empty()
    }

    /// Folds one event and returns the stream chunks it makes (`include_usage`: every chunk
    /// carries `usage: null`, and a last one without choices carries the usage).
    pub fn fold(&mut self, event: &GenerationEvent, include_usage: bool) -> Vec<Value> {
        let mut deltas = Vec::new();
        match event {
            GenerationEvent::GenerationStarted { .. } => {}
            GenerationEvent::ChunksAppended { chunks, .. } => {
                for chunk in chunks {
                    if let Some(delta) = self.absorb(chunk) {
                        deltas.push(delta);
                    }
                }
            }
            GenerationEvent::GenerationCompleted {
                finish_reason,
                usage,
                ..
            } => {
                let finish_reason = if self.calls.is_empty() {
                    openai_finish_reason(finish_reason)
                } else {
                    "tool_calls"
                };
                self.ended = Some(Ended::Finished {
                    finish_reason,
                    usage: *usage,
                });
            }
            GenerationEvent::GenerationFailed { error, .. } => {
                self.ended = Some(Ended::Failed(error.clone()));
            }
            GenerationEvent::GenerationStopped { .. } => {
                self.ended = Some(Ended::Failed("the reply was stopped".into()));
            }
            GenerationEvent::GenerationInterrupted { .. } => {
                self.ended = Some(Ended::Failed(
                    "the reply was interrupted (its server stopped)".into(),
                ));
            }
        }
        let mut out: Vec<Value> = deltas
            .into_iter()
            .map(|delta| self.chunk(delta, Value::Null))
            .collect();
        if let Some(Ended::Finished {
            finish_reason,
            usage,
        }) = &self.ended
        {
            let (finish_reason, usage) = (*finish_reason, self.usage(usage));
            out.push(self.chunk(json!({}), json!(finish_reason)));
            if include_usage {
                out.push(json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }));
            }
        }
        if include_usage {
            for chunk in out.iter_mut().filter(|c| c.get("usage").is_none()) {
                chunk["usage"] = Value::Null;
            }
        }
        out
    }

    /// One chunk's delta, if it makes one.
    fn absorb(&mut self, chunk: &Chunk) -> Option<Value> {
        let mut delta = match chunk {
            Chunk::Text { text } => {
                self.text.push_str(text);
                json!({ "content": text })
            }
            Chunk::Reasoning { text } => {
                self.reasoning.push_str(text);
                json!({ "reasoning_content": text })
            }
            Chunk::ToolInputStart {
                tool_call_id,
                tool_name,
            } => {
                let index = self.calls.len();
                self.calls.push(Call {
                    id: tool_call_id.clone(),
                    name: tool_name.clone(),
                    arguments: String::new(),
                    streamed: false,
                });
                json!({"tool_calls": [{
                    "index": index,
                    "id": tool_call_id,
                    "type": "function",
                    "function": {"name": tool_name, "arguments": ""},
                }]})
            }
            Chunk::ToolInputDelta {
                tool_call_id,
                delta,
            } => {
                let index = self.calls.iter().position(|c| c.id == *tool_call_id)?;
                let call = &mut self.calls[index];
                call.arguments.push_str(delta);
                call.streamed = true;
                json!({"tool_calls": [{"index": index, "function": {"arguments": delta}}]})
            }
            Chunk::ToolInputAvailable {
                tool_call_id,
                tool_name,
                input,
            } => {
                let arguments = match input {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                match self.calls.iter().position(|c| c.id == *tool_call_id) {
                    // Streamed already: the deltas said it all.
                    Some(index) if self.calls[index].streamed => return None,
                    Some(index) => {
                        self.calls[index].arguments = arguments.clone();
                        json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
                    }
                    None => {
                        let index = self.calls.len();
                        self.calls.push(Call {
                            id: tool_call_id.clone(),
                            name: tool_name.clone(),
                            arguments: arguments.clone(),
                            streamed: false,
                        });
                        json!({"tool_calls": [{
                            "index": index,
                            "id": tool_call_id,
                            "type": "function",
                            "function": {"name": tool_name, "arguments": arguments},
                        }]})
                    }
                }
            }
            // What Threadline's own tools and steps record has no place in this API (the
            // caller's tools end the reply; no tool of the server runs here).
            Chunk::ToolOutput { .. }
            | Chunk::ToolError { .. }
            | Chunk::StepFinished { .. }
            | Chunk::Data { .. } => return None,
        };
        if !self.opened {
            self.opened = true;
            delta["role"] = json!("assistant");
        }
        Some(delta)
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }

    /// The usage in OpenAI's counting: completion tokens include reasoning, prompt tokens
    /// include cached ones.
    fn usage(&self, usage: &TokenUsage) -> Value {
        let prompt = if self.counting.cached_in_input {
            usage.input_tokens
        } else {
            usage.input_tokens + usage.cached_input_tokens
        };
        let completion = if self.counting.reasoning_in_output {
            usage.output_tokens
        } else {
            usage.output_tokens + usage.reasoning_tokens
        };
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        })
    }

    /// The whole `chat.completion` of a finished reply.
    pub fn finished(&self, finish_reason: &str, usage: &TokenUsage) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": if self.text.is_empty() && !self.calls.is_empty() {
                Value::Null
            } else {
                json!(self.text)
            },
            "refusal": null,
        });
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning);
        }
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": self.usage(usage),
        })
    }
}

/// A recorded finish reason (the AI SDK's names) in OpenAI's names.
fn openai_finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" => "length",
        "content-filter" => "content_filter",
        "tool-calls" => "tool_calls",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn chunks(chunks: Vec<Chunk>) -> GenerationEvent {
        GenerationEvent::ChunksAppended {
            first_index: 0,
            chunks,
        }
    }

    fn completed(reason: &str) -> GenerationEvent {
        GenerationEvent::GenerationCompleted {
            finish_reason: reason.into(),
            usage: TokenUsage {
                input_tokens: 10,
                output_tokens: 7,
                reasoning_tokens: 2,
                cached_input_tokens: 4,
            },
            provider_ms: 5,
            cost_micros: 1,
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_streamed_reply_is_role_then_deltas_then_the_finish_then_the_usage() {
        let mut c = Completion::new("g1", "gpt-4o", UsageCounting::OPENAI);
        let text = |t: &str| Chunk::Text { text: t.into() };
        let first = c.fold(&chunks(vec![text("Hel"), text("lo")]), true);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0]["id"], "chatcmpl-g1");
        assert_eq!(
            first[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hel"})
        );
        assert_eq!(first[1]["choices"][0]["delta"], json!({"content": "lo"}));
        assert_eq!(first[1]["usage"], Value::Null);
        let last = c.fold(&completed("stop"), true);
        assert_eq!(last[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(last[0]["choices"][0]["delta"], json!({}));
        assert_eq!(last[1]["choices"], json!([]));
        assert_eq!(last[1]["usage"]["prompt_tokens"], 10);
        assert_eq!(last[1]["usage"]["completion_tokens"], 7);
        assert_eq!(last[1]["usage"]["total_tokens"], 17);
        let whole = c.finished("stop", &TokenUsage::default());
        assert_eq!(whole["choices"][0]["message"]["content"], "Hello");
        assert_eq!(whole["object"], "chat.completion");
    }

    #[test]
    fn without_include_usage_no_chunk_carries_usage() {
        let mut c = Completion::new("g1", "m", UsageCounting::OPENAI);
        let all: Vec<Value> = [
            chunks(vec![Chunk::Text { text: "x".into() }]),
            completed("length"),
        ]
        .iter()
        .flat_map(|e| c.fold(e, false))
        .collect();
        assert!(all.iter().all(|chunk| chunk.get("usage").is_none()));
        assert_eq!(all.last().unwrap()["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn tool_calls_stream_by_index_and_end_the_reply_as_tool_calls() {
        let mut c = Completion::new("g1", "m", UsageCounting::OPENAI);
        let out = c.fold(
            &chunks(vec![
                Chunk::ToolInputStart {
                    tool_call_id: "call_1".into(),
                    tool_name: "weather".into(),
                },
                Chunk::ToolInputDelta {
                    tool_call_id: "call_1".into(),
                    delta: "{\"city\":".into(),
                },
                Chunk::ToolInputDelta {
                    tool_call_id: "call_1".into(),
                    delta: "\"Paris\"}".into(),
                },
                Chunk::ToolInputAvailable {
                    tool_call_id: "call_1".into(),
                    tool_name: "weather".into(),
                    input: json!({"city": "Paris"}),
                },
                // A provider that sends whole inputs (Gemini): one delta with all of it.
                Chunk::ToolInputAvailable {
                    tool_call_id: "call_2".into(),
                    tool_name: "time".into(),
                    input: json!({}),
                },
            ]),
            false,
        );
        assert_eq!(out.len(), 4);
        let call = &out[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["index"].as_u64(), call["id"].as_str()),
            (Some(0), Some("call_1"))
        );
        assert_eq!(out[3]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        let end = c.fold(&completed("stop"), false);
        assert_eq!(end[0]["choices"][0]["finish_reason"], "tool_calls");
        let whole = c.finished("tool_calls", &TokenUsage::default());
        let message = &whole["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(message["tool_calls"][1]["function"]["arguments"], "{}");
    }

    #[test]
    fn usage_is_counted_the_openai_way_for_every_provider() {
        let c = Completion::new("g", "m", UsageCounting::ANTHROPIC);
        let usage = c.usage(&TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            reasoning_tokens: 0,
            cached_input_tokens: 90,
        });
        assert_eq!(usage["prompt_tokens"], 100);
        let c = Completion::new("g", "m", UsageCounting::GEMINI);
        let usage = c.usage(&TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            reasoning_tokens: 20,
            cached_input_tokens: 0,
        });
        assert_eq!(usage["completion_tokens"], 25);
    }

    #[test]
    fn a_failed_reply_ends_without_a_finish_chunk() {
        let mut c = Completion::new("g", "m", UsageCounting::OPENAI);
        let out = c.fold(
            &GenerationEvent::GenerationFailed {
                error: "boom".into(),
                at: DateTime::UNIX_EPOCH,
            },
            true,
        );
        assert!(out.is_empty());
        assert!(matches!(c.ended(), Some(Ended::Failed(e)) if e == "boom"));
    }
}
