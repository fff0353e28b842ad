//! The tool side of a reply's loop: the tool chosen for the message (search, research) before
//! the model answers, and the tools the model calls between its steps. Each call's input,
//! output or error, each research step and each step boundary is a chunk of the generation,
//! durable before anyone sees it, so a resumed or replayed stream shows the same parts.

use serde_json::{Value, json};
use threadline_domain::generation::Chunk;
use tokio::sync::watch;

use super::{Outcome, Run, StepEnd};
use crate::chat::{ForcedRun, ForcedTool, ReplyTools, StartReply};
use crate::providers::{ChatMessage, ChatRequest, ToolCall, ToolResult};
use crate::tools::ToolRunner;
use crate::tools::research::{self, Progress};

/// Runs the tool chosen for the message (if one was) and adds what it found to the message the
/// model answers; returns the tokens it spent on the model (a research plan's). `Err` is how
/// the reply ends instead (stopped, or the log refused a write).
pub(super) async fn run_forced(
    run: &mut Run,
    reply: &StartReply,
    tools: &ReplyTools,
    request: &mut ChatRequest,
    stop: &mut watch::Receiver<bool>,
) -> Result<crate::providers::Usage, Outcome> {
    let Some(forced) = &tools.forced else {
        return Ok(Default::default());
    };
    let question = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let (ran, note, usage) = match forced.kind {
        ForcedTool::Search => {
            let (ran, note) = search(run, tools.toolbox.as_ref(), &question, stop).await;
            (ran, note, Default::default())
        }
        ForcedTool::Research => research(run, reply, tools, forced, &question, stop).await,
    };
    // The run's credit: spent when the tool ran, given back when it did not.
    run.service
        .close_reservation(
            &forced.reservation,
            &forced.run_id,
            matches!(ran, Ok(true)).then_some(None),
            &reply.meta,
        )
        .await;
    ran?;
    if let Some(user) = request.messages.iter_mut().rev().find(|m| m.role == "user") {
        user.content.push_str(&note);
    }
    Ok(usage)
}

/// One web search for the message, shown as a `web_search` call. Returns whether it ran, and
/// the note for the model.
async fn search(
    run: &mut Run,
    toolbox: &dyn ToolRunner,
    question: &str,
    stop: &mut watch::Receiver<bool>,
) -> (Result<bool, Outcome>, String) {
    let id = run.new_call_id("search");
    let query: String = question.chars().take(400).collect();
    let announced = run
        .commit(
            threadline_domain::generation::GenerationCommand::AppendChunks {
                chunks: vec![
                    Chunk::ToolInputStart {
                        tool_call_id: id.clone(),
                        tool_name: "web_search".into(),
                    },
                    Chunk::ToolInputAvailable {
                        tool_call_id: id.clone(),
                        tool_name: "web_search".into(),
                        input: json!({"query": query}),
                    },
                ],
            },
        )
        .await;
    if !announced {
        return (Err(Outcome::Lost), String::new());
    }
    let found = tokio::select! {
        found = toolbox.search(&query, crate::tools::SEARCH_RESULTS, 0) => Some(found),
        _ = stop.wait_for(|s| *s) => None,
    };
    let Some(found) = found else {
        stopped(run, vec![id]).await;
        return (Err(Outcome::Stopped), String::new());
    };
    let (chunk, note, ran) = match found {
        Ok(results) => {
            let output = json!(results);
            let note = format!(
                "\n\nWeb search results for this message (cite the URLs you use):\n{output}"
            );
            (
                Chunk::ToolOutput {
                    tool_call_id: id,
                    output,
                },
                note,
                true,
            )
        }
        Err(error) => {
            let note = format!("\n\n(The web search failed: {error}.)");
            (
                Chunk::ToolError {
                    tool_call_id: id,
                    error_text: error,
                },
                note,
                false,
            )
        }
    };
    let committed = run
        .commit(
            threadline_domain::generation::GenerationCommand::AppendChunks {
                chunks: vec![chunk],
            },
        )
        .await;
    if !committed {
        return (Err(Outcome::Lost), note);
    }
    (Ok(ran), note)
}

/// A research run for the message: its progress as `data-research-*` parts. Returns whether
/// it ran, the material for the model, and what its plan cost.
async fn research(
    run: &mut Run,
    reply: &StartReply,
    tools: &ReplyTools,
    forced: &ForcedRun,
    question: &str,
    stop: &mut watch::Receiver<bool>,
) -> (Result<bool, Outcome>, String, crate::providers::Usage) {
    let planner = research::Planner {
        provider: reply.model.provider.clone(),
        upstream: reply.model.upstream.clone(),
        http: run.service.http.clone(),
    };
    let mut progress = research::start(
        tools.toolbox.clone(),
        planner,
        question.to_owned(),
        forced.run_id.clone(),
        research::Limits::default(),
    );
    loop {
        let next = tokio::select! {
            next = progress.recv() => next,
            _ = stop.wait_for(|s| *s) => {
                return (Err(Outcome::Stopped), String::new(), Default::default());
            }
        };
        match next {
            Some(Progress::Part { name, data }) => {
                let committed = run
                    .commit(
                        threadline_domain::generation::GenerationCommand::AppendChunks {
                            chunks: vec![Chunk::Data {
                                name: format!("research-{name}"),
                                id: None,
                                data,
                            }],
                        },
                    )
                    .await;
                if !committed {
                    return (Err(Outcome::Lost), String::new(), Default::default());
                }
            }
            Some(Progress::Done {
                material, usage, ..
            }) => return (Ok(true), research::synthesis_note(&material), usage),
            None => return (Ok(true), research::synthesis_note(""), Default::default()),
        }
    }
}

/// After a step that asked for tools: makes each call's whole input durable, runs the calls
/// (all at once), makes their results durable, and returns the messages for the next step.
/// At the step limit the calls are not run (each gets an error saying so) and `Ok(None)` ends
/// the reply. `Err` is how the reply ends instead (stopped, or the log refused a write).
pub(super) async fn run_calls(
    run: &mut Run,
    toolbox: &dyn ToolRunner,
    step: StepEnd,
    at_limit: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Vec<ChatMessage>>, Outcome> {
    let calls: Vec<(super::PendingCall, Result<Value, String>)> = step
        .calls
        .into_iter()
        .map(|call| {
            let input = parse_arguments(&call.arguments);
            (call, input)
        })
        .collect();
    let available = calls
        .iter()
        .map(|(call, input)| Chunk::ToolInputAvailable {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            input: input
                .clone()
                .unwrap_or_else(|_| Value::String(call.arguments.clone())),
        })
        .collect();
    if !run.commit_chunks(available).await {
        return Err(Outcome::Lost);
    }
    if at_limit {
        let refused = calls
            .iter()
            .map(|(call, _)| Chunk::ToolError {
                tool_call_id: call.id.clone(),
                error_text: "not run: the reply reached its step limit".into(),
            })
            .collect();
        return if run.commit_chunks(refused).await {
            Ok(None)
        } else {
            Err(Outcome::Lost)
        };
    }
    let runs = calls.iter().map(|(call, input)| async move {
        match input {
            Ok(input) => toolbox.call(&call.id, &call.name, input).await,
            Err(e) => Err(e.clone()),
        }
    });
    let results = tokio::select! {
        results = futures::future::join_all(runs) => Some(results),
        _ = stop.wait_for(|s| *s) => None,
    };
    let Some(results) = results else {
        // The calls end with the reply: each says so, rather than staying open.
        let ids = calls.iter().map(|(call, _)| call.id.clone()).collect();
        stopped(run, ids).await;
        return Err(Outcome::Stopped);
    };
    let results = results
        .into_iter()
        .map(|r| r.map(capped).map_err(|e| cut(&e)));
    let mut chunks = Vec::with_capacity(calls.len() + 1);
    let mut tool_calls = Vec::with_capacity(calls.len());
    let mut tool_results = Vec::with_capacity(calls.len());
    for ((call, input), result) in calls.into_iter().zip(results) {
        let content = match &result {
            Ok(Value::String(text)) => text.clone(),
            Ok(output) => output.to_string(),
            Err(error) => error.clone(),
        };
        chunks.push(match &result {
            Ok(output) => Chunk::ToolOutput {
                tool_call_id: call.id.clone(),
                output: output.clone(),
            },
            Err(error) => Chunk::ToolError {
                tool_call_id: call.id.clone(),
                error_text: error.clone(),
            },
        });
        tool_results.push(ToolResult {
            call_id: call.provider_id.clone(),
            name: call.name.clone(),
            content,
            is_error: result.is_err(),
        });
        tool_calls.push(ToolCall {
            id: call.provider_id,
            name: call.name,
            input: input
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            arguments: call.arguments,
            signature: call.signature,
        });
    }
    chunks.push(Chunk::StepFinished {
        usage: step.usage,
        finish_reason: step.finish_reason,
    });
    if !run.commit_chunks(chunks).await {
        return Err(Outcome::Lost);
    }
    Ok(Some(vec![
        ChatMessage {
            tool_calls,
            thinking: step.thinking,
            ..ChatMessage::text("assistant", step.text)
        },
        ChatMessage {
            tool_results,
            ..ChatMessage::text("tool", "")
        },
    ]))
}

/// Ends the calls `ids`, still running when the reply was stopped, with an error saying so (the
/// reply's stop follows; a write that fails here leaves them open, nothing worse).
async fn stopped(run: &mut Run, ids: Vec<String>) {
    let chunks = ids
        .into_iter()
        .map(|tool_call_id| Chunk::ToolError {
            tool_call_id,
            error_text: "stopped: the reply was stopped before the tool finished".into(),
        })
        .collect();
    run.commit_chunks(chunks).await;
}

/// The most bytes of JSON text one tool result may take (in the log and in the model's
/// context); a larger one is kept as the start of its text, marked as cut.
pub const MAX_TOOL_OUTPUT: usize = 64 * 1024;

/// `output` as it is recorded and sent: itself when small enough, else the start of its JSON
/// text.
fn capped(output: Value) -> Value {
    let text = match &output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.len() <= MAX_TOOL_OUTPUT {
        return output;
    }
    Value::String(cut(&text))
}

/// The first [`MAX_TOOL_OUTPUT`] bytes of `text` (on a character boundary), marked when cut.
fn cut(text: &str) -> String {
    if text.len() <= MAX_TOOL_OUTPUT {
        return text.to_owned();
    }
    let mut end = MAX_TOOL_OUTPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [cut: the tool returned {} bytes]",
        &text[..end],
        text.len()
    )
}

/// A call's arguments as JSON (`{}` when the model sent none); an error the model reads when
/// they are not JSON.
fn parse_arguments(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments)
        .map_err(|e| format!("the call's arguments are not valid JSON ({e}): {arguments}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_results_are_cut_to_the_start_of_their_text() {
        let small = json!({"a": 1});
        assert_eq!(capped(small.clone()), small);
        let big = json!({"text": "é".repeat(MAX_TOOL_OUTPUT)});
        let Value::String(kept) = capped(big) else {
            panic!("a cut result is text")
        };
        assert!(kept.starts_with("{\"text\":\"é"), "{}", &kept[..20]);
        assert!(kept.ends_with("bytes]"), "{}", &kept[kept.len() - 40..]);
        assert!(kept.len() < MAX_TOOL_OUTPUT + 100);
    }

    #[test]
    fn arguments_are_json_or_an_error_the_model_reads() {
        assert_eq!(parse_arguments(""), Ok(json!({})));
        assert_eq!(parse_arguments("{\"q\": 1}"), Ok(json!({"q": 1})));
        let error = parse_arguments("{\"q\": ").unwrap_err();
        assert!(
            error.starts_with("the call's arguments are not valid JSON"),
            "{error}"
        );
    }
}
