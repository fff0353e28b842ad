//! `threadline audit account <id>`: an account's ledger statement, printed (the same as
//! `GET /v1/admin/accounts/{id}/ledger`); `threadline audit thread <id> --at <moment>`: a
//! thread as it was then (the same as `GET /v1/admin/threads/{id}?at=`).

use std::fmt::Write as _;

use super::{AuditCommand, Format, StorageArgs};
use crate::reports;
use crate::services::time_travel::{self, Moment, ThreadAt};

/// Runs an audit subcommand.
pub async fn run(
    storage: StorageArgs,
    command: AuditCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        AuditCommand::Account { id, format } => account(storage, &id, format).await,
        AuditCommand::Thread { id, at, format } => {
            thread(storage, &id, at.as_deref(), format).await
        }
    }
}

async fn account(
    storage: StorageArgs,
    id: &str,
    format: Format,
) -> Result<(), Box<dyn std::error::Error>> {
    let (db, _) = super::report::open(&storage).await?;
    if threadline_projections::accounts::account(&db, id)
        .await?
        .is_none()
    {
        return Err(format!("no account {id}").into());
    }
    let statement = reports::statement(&db, id)
        .await
        .map_err(|e| reports::describe(&e))?;
    match format {
        Format::Table => print!("{}", statement.to_table()),
        Format::Csv => print!("{}", statement.to_csv()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&statement)?),
    }
    Ok(())
}

async fn thread(
    storage: StorageArgs,
    id: &str,
    at: Option<&str>,
    format: Format,
) -> Result<(), Box<dyn std::error::Error>> {
    if format == Format::Csv {
        return Err("a thread prints as `table` or `json`".into());
    }
    let (db, keys) = super::report::open(&storage).await?;
    let moment = match at {
        Some(at) => Moment::parse(&db, at).await?,
        None => Moment::Now,
    };
    let Some(thread) = time_travel::thread_at(&db, &keys, id, moment).await? else {
        return Err(match at {
            Some(at) => format!("thread {id} did not exist at {at}"),
            None => format!("no thread {id}"),
        }
        .into());
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&thread)?),
        _ => print!("{}", to_text(&thread)),
    }
    Ok(())
}

/// The thread as readable text: its header, titles, current path and the other branches.
fn to_text(t: &ThreadAt) -> String {
    let mut out = String::new();
    let title = t.thread.title.as_deref().unwrap_or("(untitled)");
    let _ = writeln!(out, "thread {} \"{title}\"", t.thread.id);
    let _ = writeln!(
        out,
        "as of {} (log {}); owner {}",
        t.as_of.recorded_at, t.as_of.cursor, t.owner
    );
    let mut state = t.state.to_owned();
    if let Some(at) = &t.deleted_at {
        let _ = write!(state, " at {at}");
    }
    if t.thread.archived {
        state.push_str(", archived");
    }
    if t.thread.pinned {
        state.push_str(", pinned");
    }
    if let Some(g) = &t.thread.active_generation_id {
        let _ = write!(state, ", replying ({g})");
    }
    let _ = writeln!(out, "state: {state}");
    if !t.titles.is_empty() {
        let _ = writeln!(out, "titles:");
        for title in &t.titles {
            let source = title.source.as_deref().unwrap_or("created");
            let _ = writeln!(out, "  {}  {:<9}  {}", title.at, source, title.title);
        }
    }
    let _ = writeln!(out, "messages (current path):");
    for node in t.tree.iter().filter(|n| n.current) {
        line(&mut out, node, t);
    }
    let others: Vec<_> = t.tree.iter().filter(|n| !n.current).collect();
    if !others.is_empty() {
        let _ = writeln!(out, "other branches:");
        for node in others {
            line(&mut out, node, t);
        }
    }
    out
}

fn line(out: &mut String, node: &time_travel::TreeNode, t: &ThreadAt) {
    let siblings = t
        .tree
        .iter()
        .filter(|n| n.parent_id == node.parent_id && n.role == node.role)
        .count();
    let versions = if siblings > 1 {
        format!(" ({siblings} versions)")
    } else {
        String::new()
    };
    let model = node
        .model
        .as_deref()
        .map(|m| format!(" {m}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} {} [{}{model}, {}]{versions} after {}: {}",
        node.created_at,
        node.role,
        node.id,
        node.status,
        node.parent_id.as_deref().unwrap_or("-"),
        node.text.replace('\n', " ")
    );
}
