//! Full-text search over each account's thread titles and message texts.
//!
//! One document per title and per message (user messages when posted, replies when they end,
//! copied histories at once), every branch included. SQLite: an FTS5 table, snippets cut in Rust
//! ([`mark_snippet`]); PostgreSQL: a `tsvector` column with a GIN index, `ts_headline`. Title hits come
//! first (ranked with bm25 / `ts_rank`), then messages, newest first (see [`search`] for why). Both
//! use language-neutral tokenizing (`unicode61`, `simple`), so every script works; Chinese
//! and Japanese characters, written without spaces, are indexed one character per token (see
//! [`segment`]) and a query's run of them matches as a phrase. Every query term matches as a
//! prefix.
//!
//! Each document carries an owner token, so a query intersects the owner's documents first.
//! Hidden messages and deleted threads are left out at read time, by joining the messages and
//! threads projections.
//!
//! Tables: `search_docs` (the index), `search_pending` (a reply's text while it streams),
//! `search_threads` (each thread's owner) and `search_links` (anonymous account → registered).

use threadline_domain::account::AccountEvent;
use threadline_domain::generation::{Chunk, GenerationEvent, Origin};
use threadline_domain::thread::ThreadEvent;

use crate::db::{Arg, Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{bind_args, micros, on_read};

/// Whether `c` is written without spaces between words (Han, Hiragana, Katakana).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F | 0xFF66..=0xFF9F)
}

/// Text as it is indexed: Chinese and Japanese characters stand apart, so each is a token.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut prev_cjk = false;
    for c in text.chars() {
        let cjk = is_cjk(c);
        if cjk || prev_cjk {
            out.push(' ');
        }
        out.push(c);
        prev_cjk = cjk;
    }
    out
}

/// The inverse of [`segment`] for a snippet: the spaces it put around characters go.
fn unsegment(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
            let after = chars.get(i + 1).copied();
            let marker = |c: Option<char>| matches!(c, Some(START | END));
            let cjk = |c: Option<char>| c.is_some_and(is_cjk);
            let two_before = i.checked_sub(2).and_then(|j| chars.get(j)).copied();
            if cjk(before)
                || cjk(after)
                || (marker(before) && cjk(chars.get(i + 2).copied()))
                || (marker(before) && cjk(two_before))
            {
                continue;
            }
        }
        out.push(*c);
    }
    out.trim().to_owned()
}

/// Where a snippet's highlight starts and ends (private-use characters, never in text).
const START: char = '\u{E000}';
const END: char = '\u{E001}';

/// One term of a query: a word (matched as a prefix) or a run of CJK characters (a phrase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Word(String),
    Phrase(Vec<String>),
}

/// The terms of a user's query: letters and digits of any script; everything else separates.
pub fn terms(q: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut word = String::new();
    let mut run: Vec<String> = Vec::new();
    let flush_word = |word: &mut String, terms: &mut Vec<Term>| {
        if !word.is_empty() {
            terms.push(Term::Word(std::mem::take(word).to_lowercase()));
        }
    };
    let flush_run = |run: &mut Vec<String>, terms: &mut Vec<Term>| {
        if !run.is_empty() {
            terms.push(Term::Phrase(std::mem::take(run)));
        }
    };
    for c in q.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut terms);
            run.push(c.to_string());
        } else if c.is_alphanumeric() {
            flush_run(&mut run, &mut terms);
            word.push(c);
        } else {
            flush_word(&mut word, &mut terms);
            flush_run(&mut run, &mut terms);
        }
    }
    flush_word(&mut word, &mut terms);
    flush_run(&mut run, &mut terms);
    terms.truncate(16);
    terms
}

/// The owner token of account `id` in the index.
fn owner_token(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("o{}", hex.to_lowercase())
}

/// An FTS5 query: the owner, and every term (words as prefixes, runs as phrases) in the title
/// or the text.
pub fn fts5_query(owner: &str, terms: &[Term]) -> String {
    fts5_query_in(owner, terms, "{title body}")
}

/// An FTS5 query over `columns` (`{title body}`, `title` or `body`).
fn fts5_query_in(owner: &str, terms: &[Term], columns: &str) -> String {
    let body: Vec<String> = terms
        .iter()
        .map(|t| match t {
            Term::Word(w) => format!("\"{w}\"*"),
            Term::Phrase(chars) => format!("\"{}\"", chars.join(" ")),
        })
        .collect();
    format!(
        "owner : \"{}\" AND {columns} : ({})",
        owner_token(owner),
        body.join(" AND ")
    )
}

/// A PostgreSQL `tsquery`: the owner, and every term.
pub fn tsquery(owner: &str, terms: &[Term]) -> String {
    let mut parts = vec![format!("'{}'", owner_token(owner))];
    for t in terms {
        parts.push(match t {
            Term::Word(w) => format!("'{w}':*"),
            Term::Phrase(chars) => format!(
                "({})",
                chars
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(" <-> ")
            ),
        });
    }
    parts.join(" & ")
}

/// A change to the search tables.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A thread and its owner (an anonymous owner already linked counts as the registered one).
    Thread {
        id: String,
        owner: String,
    },
    /// Indexes a document (`message_id` empty for the title).
    Doc {
        thread_id: String,
        message_id: String,
        title: String,
        body: String,
        at: i64,
    },
    DeleteDoc {
        thread_id: String,
        message_id: String,
    },
    DeleteThread {
        thread_id: String,
    },
    /// A reply started: its text is collected until it ends.
    Pending {
        generation_id: String,
        thread_id: String,
        message_id: String,
    },
    AppendPending {
        generation_id: String,
        text: String,
    },
    /// A reply ended: its text becomes a document.
    IndexPending {
        generation_id: String,
        at: i64,
    },
    Link {
        anonymous: String,
        target: String,
    },
}

/// Folds one thread event.
pub fn apply_thread(thread_id: &str, event: ThreadEvent) -> Vec<Change> {
    let thread_id = thread_id.to_owned();
    match event {
        ThreadEvent::ThreadCreated { owner, title, at } => {
            let mut changes = vec![Change::Thread {
                id: thread_id.clone(),
                owner: owner.to_string(),
            }];
            if let Some(title) = title {
                changes.push(Change::Doc {
                    thread_id,
                    message_id: String::new(),
                    title: title.as_str().to_owned(),
                    body: String::new(),
                    at: micros(at),
                });
            }
            changes
        }
        ThreadEvent::ThreadRenamed { title, at, .. } => vec![
            Change::DeleteDoc {
                thread_id: thread_id.clone(),
                message_id: String::new(),
            },
            Change::Doc {
                thread_id,
                message_id: String::new(),
                title: title.as_str().to_owned(),
                body: String::new(),
                at: micros(at),
            },
        ],
        ThreadEvent::UserMessagePosted {
            message_id,
            text,
            at,
            ..
        } => vec![Change::Doc {
            thread_id,
            message_id,
            title: String::new(),
            body: text,
            at: micros(at),
        }],
        ThreadEvent::HistoryCopied { messages, at, .. } => messages
            .into_iter()
            .filter(|m| !m.text.trim().is_empty())
            .map(|m| Change::Doc {
                thread_id: thread_id.clone(),
                message_id: m.id,
                title: String::new(),
                body: m.text,
                at: micros(m.created_at.unwrap_or(at)),
            })
            .collect(),
        ThreadEvent::ThreadDeleted { .. } => vec![Change::DeleteThread { thread_id }],
        _ => vec![],
    }
}

/// Folds one generation event.
pub fn apply_generation(generation_id: &str, event: GenerationEvent) -> Vec<Change> {
    let generation_id = generation_id.to_owned();
    let at = event.terminal_at();
    match event {
        GenerationEvent::GenerationStarted {
            origin: Origin::Thread { thread_id, .. },
            message_id,
            ..
        } => vec![Change::Pending {
            generation_id,
            thread_id,
            message_id,
        }],
        GenerationEvent::ChunksAppended { chunks, .. } => {
            let text: String = chunks
                .iter()
                .filter_map(|c| match c {
                    Chunk::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if text.is_empty() {
                return vec![];
            }
            vec![Change::AppendPending {
                generation_id,
                text,
            }]
        }
        _ => match at {
            Some(at) => vec![Change::IndexPending {
                generation_id,
                at: micros(at),
            }],
            None => vec![],
        },
    }
}

/// Folds one account event: links move the anonymous account's documents.
pub fn apply_account(account_id: &str, event: AccountEvent) -> Vec<Change> {
    match event {
        AccountEvent::AnonymousAccountLinked {
            anonymous_account_id,
            ..
        } => vec![Change::Link {
            anonymous: anonymous_account_id.to_string(),
            target: account_id.to_owned(),
        }],
        _ => vec![],
    }
}

/// The statements of one change on `backend`.
fn sql(change: Change, backend: Backend, t: &Tables) -> Vec<Stmt> {
    let docs = t.name("search_docs");
    let pending = t.name("search_pending");
    let threads = t.name("search_threads");
    let links = t.name("search_links");
    let rows = t.name("search_rows");
    // SQLite numbers `$N` by first appearance: each statement uses them in order.
    let insert_doc = |thread_id: Arg, message_id: Arg, title: Arg, body: Arg, at: Arg| match backend
    {
        // FTS5 columns are not indexed for equality: `search_rows` keys each document's rowid
        // by message, so deleting one never scans the index (and a message is indexed once,
        // as PostgreSQL's primary key does).
        Backend::Sqlite => vec![
            Stmt::new(
                format!(
                    "INSERT INTO {docs} (owner, title, body, thread_id, message_id, at) \
                     SELECT 'o' || lower(replace(owner, '-', '')), $1, $2, $3, $4, $5 \
                     FROM {threads} WHERE thread_id = $3 AND NOT EXISTS \
                     (SELECT 1 FROM {rows} WHERE thread_id = $3 AND message_id = $4)"
                ),
                vec![title, body, thread_id.clone(), message_id.clone(), at],
            ),
            Stmt::new(
                format!(
                    "INSERT INTO {rows} (thread_id, message_id, doc) \
                     SELECT $1, $2, last_insert_rowid() WHERE changes() = 1"
                ),
                vec![thread_id, message_id],
            ),
        ],
        Backend::Postgres => vec![Stmt::new(
            format!(
                "INSERT INTO {docs} (thread_id, message_id, content, at, tsv) \
                 SELECT $3, $4, CASE WHEN $1 = '' THEN $2 ELSE $1 END, $5, \
                 setweight(to_tsvector('simple', 'o' || lower(replace(owner, '-', ''))), 'D') \
                 || setweight(to_tsvector('simple', $1), 'A') \
                 || setweight(to_tsvector('simple', $2), 'D') \
                 FROM {threads} WHERE thread_id = $3 \
                 ON CONFLICT (thread_id, message_id) DO NOTHING"
            ),
            vec![title, body, thread_id, message_id, at],
        )],
    };
    match change {
        Change::Thread { id, owner } => vec![Stmt::new(
            format!(
                "INSERT INTO {threads} (thread_id, owner) VALUES ($1, \
                 COALESCE((SELECT target_id FROM {links} WHERE anonymous_id = $2), $2))"
            ),
            vec![id.into(), owner.into()],
        )],
        Change::Doc {
            thread_id,
            message_id,
            title,
            body,
            at,
        } => insert_doc(
            thread_id.into(),
            message_id.into(),
            segment(&title).into(),
            segment(&body).into(),
            at.into(),
        ),
        Change::DeleteDoc {
            thread_id,
            message_id,
        } => match backend {
            Backend::Sqlite => vec![
                Stmt::new(
                    format!(
                        "DELETE FROM {docs} WHERE rowid IN \
                         (SELECT doc FROM {rows} WHERE thread_id = $1 AND message_id = $2)"
                    ),
                    vec![thread_id.clone().into(), message_id.clone().into()],
                ),
                Stmt::new(
                    format!("DELETE FROM {rows} WHERE thread_id = $1 AND message_id = $2"),
                    vec![thread_id.into(), message_id.into()],
                ),
            ],
            Backend::Postgres => vec![Stmt::new(
                format!("DELETE FROM {docs} WHERE thread_id = $1 AND message_id = $2"),
                vec![thread_id.into(), message_id.into()],
            )],
        },
        Change::DeleteThread { thread_id } => vec![
            match backend {
                Backend::Sqlite => Stmt::new(
                    format!(
                        "DELETE FROM {docs} WHERE rowid IN \
                         (SELECT doc FROM {rows} WHERE thread_id = $1)"
                    ),
                    vec![thread_id.clone().into()],
                ),
                Backend::Postgres => Stmt::new(
                    format!("DELETE FROM {docs} WHERE thread_id = $1"),
                    vec![thread_id.clone().into()],
                ),
            },
            Stmt::new(
                format!("DELETE FROM {rows} WHERE thread_id = $1"),
                vec![thread_id.clone().into()],
            ),
            Stmt::new(
                format!("DELETE FROM {pending} WHERE thread_id = $1"),
                vec![thread_id.clone().into()],
            ),
            Stmt::new(
                format!("DELETE FROM {threads} WHERE thread_id = $1"),
                vec![thread_id.into()],
            ),
        ],
        Change::Pending {
            generation_id,
            thread_id,
            message_id,
        } => vec![Stmt::new(
            format!(
                "INSERT INTO {pending} (generation_id, thread_id, message_id, text) \
                 VALUES ($1, $2, $3, '')"
            ),
            vec![generation_id.into(), thread_id.into(), message_id.into()],
        )],
        Change::AppendPending {
            generation_id,
            text,
        } => vec![Stmt::new(
            format!("UPDATE {pending} SET text = text || $1 WHERE generation_id = $2"),
            vec![segment(&text).into(), generation_id.into()],
        )],
        Change::IndexPending { generation_id, at } => {
            // The pending text was segmented as it was appended.
            let insert = match backend {
                Backend::Sqlite => format!(
                    "INSERT INTO {docs} (owner, title, body, thread_id, message_id, at) \
                     SELECT 'o' || lower(replace(t.owner, '-', '')), '', p.text, p.thread_id, \
                     p.message_id, $1 FROM {pending} p JOIN {threads} t ON t.thread_id = p.thread_id \
                     WHERE p.generation_id = $2 AND p.text <> '' AND NOT EXISTS \
                     (SELECT 1 FROM {rows} r WHERE r.thread_id = p.thread_id \
                      AND r.message_id = p.message_id)"
                ),
                Backend::Postgres => format!(
                    "INSERT INTO {docs} (thread_id, message_id, content, at, tsv) \
                     SELECT p.thread_id, p.message_id, p.text, $1, \
                     setweight(to_tsvector('simple', 'o' || lower(replace(t.owner, '-', ''))), 'D') \
                     || setweight(to_tsvector('simple', p.text), 'D') \
                     FROM {pending} p JOIN {threads} t ON t.thread_id = p.thread_id \
                     WHERE p.generation_id = $2 AND p.text <> '' \
                     ON CONFLICT (thread_id, message_id) DO NOTHING"
                ),
            };
            let mut stmts = vec![Stmt::new(
                insert,
                vec![at.into(), generation_id.clone().into()],
            )];
            if backend == Backend::Sqlite {
                stmts.push(Stmt::new(
                    format!(
                        "INSERT INTO {rows} (thread_id, message_id, doc) \
                         SELECT thread_id, message_id, last_insert_rowid() FROM {pending} \
                         WHERE generation_id = $1 AND changes() = 1"
                    ),
                    vec![generation_id.clone().into()],
                ));
            }
            stmts.push(Stmt::new(
                format!("DELETE FROM {pending} WHERE generation_id = $1"),
                vec![generation_id.into()],
            ));
            stmts
        }
        Change::Link { anonymous, target } => {
            let (old, new) = (owner_token(&anonymous), owner_token(&target));
            let mut stmts = vec![
                Stmt::new(
                    format!("INSERT INTO {links} (anonymous_id, target_id) VALUES ($1, $2)"),
                    vec![anonymous.clone().into(), target.clone().into()],
                ),
                Stmt::new(
                    format!("UPDATE {threads} SET owner = $1 WHERE owner = $2"),
                    vec![target.into(), anonymous.into()],
                ),
            ];
            stmts.push(match backend {
                Backend::Sqlite => Stmt::new(
                    format!("UPDATE {docs} SET owner = $1 WHERE owner = $2"),
                    vec![new.into(), old.into()],
                ),
                Backend::Postgres => Stmt::new(
                    format!(
                        "UPDATE {docs} SET tsv = setweight(to_tsvector('simple', $1), 'D') \
                         || ts_delete(tsv, $2::text) WHERE tsv @@ to_tsquery('simple', $3)"
                    ),
                    vec![new.into(), old.clone().into(), format!("'{old}'").into()],
                ),
            });
            stmts
        }
    }
}

/// The search projection.
pub struct Search;

impl Projection for Search {
    fn name(&self) -> &'static str {
        "search"
    }

    fn version(&self) -> i64 {
        // 2: SQLite documents are keyed by message in `search_rows`.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "search_docs",
            "search_rows",
            "search_pending",
            "search_threads",
            "search_links",
        ]
    }

    fn ddl(&self, backend: Backend, t: &Tables) -> Vec<String> {
        let docs = t.name("search_docs");
        let mut ddl = match backend {
            Backend::Sqlite => vec![format!(
                "CREATE VIRTUAL TABLE IF NOT EXISTS {docs} USING fts5(owner, title, body, \
                 thread_id UNINDEXED, message_id UNINDEXED, at UNINDEXED, \
                 tokenize = 'unicode61 remove_diacritics 2')"
            )],
            Backend::Postgres => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {docs} (
                        thread_id TEXT NOT NULL,
                        message_id TEXT NOT NULL,
                        content TEXT NOT NULL,
                        at BIGINT NOT NULL,
                        tsv TSVECTOR NOT NULL,
                        PRIMARY KEY (thread_id, message_id)
                    )"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {docs} USING GIN (tsv)",
                    t.index("search_docs", "tsv")
                ),
            ],
        };
        ddl.extend([
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    generation_id TEXT PRIMARY KEY,
                    thread_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    text TEXT NOT NULL
                )",
                t.name("search_pending")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    thread_id TEXT PRIMARY KEY,
                    owner TEXT NOT NULL
                )",
                t.name("search_threads")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    anonymous_id TEXT PRIMARY KEY,
                    target_id TEXT NOT NULL
                )",
                t.name("search_links")
            ),
            // SQLite: the rowid of each message's document (PostgreSQL's documents have their
            // own primary key; the table stays empty there).
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    thread_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    doc BIGINT NOT NULL,
                    PRIMARY KEY (thread_id, message_id)
                )",
                t.name("search_rows")
            ),
        ]);
        ddl
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        let changes = match event.aggregate_type.as_str() {
            "Thread" => apply_thread(&event.aggregate_id, decode(event)?),
            "Generation" => apply_generation(&event.aggregate_id, decode(event)?),
            "Account" if event.event_type == "AnonymousAccountLinked" => {
                apply_account(&event.aggregate_id, decode(event)?)
            }
            _ => return Ok(vec![]),
        };
        let backend = tables.backend();
        Ok(changes
            .into_iter()
            .flat_map(|c| sql(c, backend, tables))
            .collect())
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub thread_id: String,
    /// The thread's title now.
    pub title: Option<String>,
    /// `None` for a title hit.
    pub message_id: Option<String>,
    /// The matching passage, highlights removed.
    pub snippet: String,
    /// Where the highlights are in `snippet`: `(start, end)` in characters.
    pub highlights: Vec<(usize, usize)>,
    pub at: i64,
}

/// Tokens a snippet shows at most.
const SNIPPET_TOKENS: usize = 24;

/// A snippet of indexed `text` around its first match of `terms`, matches between [`START`]
/// and [`END`], `…` where text was cut: what FTS5's `snippet()` gives, computed here for the
/// page's hits only (asking FTS5 for it means evaluating the query again for each hit).
/// Prefixes match case-insensitively; a match only found through diacritic folding
/// (`cafe` for "café") is shown unmarked.
fn mark_snippet(text: &str, terms: &[Term]) -> String {
    let tokens: Vec<(usize, usize)> = {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, text.len()));
        }
        out
    };
    let lower: Vec<String> = tokens
        .iter()
        .map(|&(a, b)| text[a..b].to_lowercase())
        .collect();
    let mut hit = vec![false; tokens.len()];
    for term in terms {
        match term {
            Term::Word(w) => {
                for (k, t) in lower.iter().enumerate() {
                    if t.starts_with(w.as_str()) {
                        hit[k] = true;
                    }
                }
            }
            Term::Phrase(chars) if !chars.is_empty() => {
                for k in 0..lower.len().saturating_sub(chars.len() - 1) {
                    if chars.iter().enumerate().all(|(n, c)| lower[k + n] == *c) {
                        hit[k..k + chars.len()].iter_mut().for_each(|h| *h = true);
                    }
                }
            }
            Term::Phrase(_) => {}
        }
    }
    if tokens.is_empty() {
        return text.to_owned();
    }
    let first = hit.iter().position(|h| *h).unwrap_or(0);
    let from = first.saturating_sub(SNIPPET_TOKENS / 4);
    let to = (from + SNIPPET_TOKENS).min(tokens.len());
    let from = to.saturating_sub(SNIPPET_TOKENS).min(from);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    // A run of matched CJK characters (a phrase) is one highlight, as FTS5 marks it.
    let cjk_at = |k: usize| text[tokens[k].0..].chars().next().is_some_and(is_cjk);
    let joined = |k: usize| k > from && hit[k - 1] && hit[k] && cjk_at(k - 1) && cjk_at(k);
    let mut at = tokens[from].0;
    for k in from..to {
        let (a, b) = tokens[k];
        out.push_str(&text[at..a]);
        if hit[k] && !joined(k) {
            out.push(START);
        }
        out.push_str(&text[a..b]);
        if hit[k] && !(k + 1 < to && joined(k + 1)) {
            out.push(END);
        }
        at = b;
    }
    if to < tokens.len() {
        out.push('…');
    } else {
        out.push_str(&text[at..]);
    }
    out
}

/// Turns a snippet with highlight markers into text and highlight ranges.
fn highlighted(raw: &str) -> (String, Vec<(usize, usize)>) {
    let text = unsegment(raw);
    let mut out = String::with_capacity(text.len());
    let mut ranges = Vec::new();
    let mut start = None;
    let mut n = 0;
    for c in text.chars() {
        match c {
            START => start = Some(n),
            END => {
                if let Some(s) = start.take()
                    && n > s
                {
                    ranges.push((s, n));
                }
            }
            c => {
                out.push(c);
                n += 1;
            }
        }
    }
    (out, ranges)
}

/// The caller's hits for `q` from `offset`: thread titles first (best match first), then
/// messages, newest first. Hidden messages and deleted threads never appear.
///
/// Messages are ordered by time, not by a relevance score: scoring every match costs about
/// 4 µs a match in FTS5 (a common word in a big account has tens of thousands of them, a tenth
/// of a second), while the newest matches come straight from the index; and a person searching
/// their chats looks for a conversation, most often a recent one. Titles, few, are ranked
/// (bm25 / `ts_rank`).
///
/// Each group is first cut to the newest candidates the page needs (plus slack for hidden
/// messages), and only those are checked for visibility and get a snippet; a short page is
/// asked again without the cut, so hidden messages never shorten a page.
pub async fn search(
    db: &Db,
    owner: &str,
    q: &str,
    offset: i64,
    limit: i64,
) -> Result<Vec<Hit>, sqlx::Error> {
    let terms = terms(q);
    if terms.is_empty() {
        return Ok(vec![]);
    }
    let cap = (offset + limit) * 2 + 16;
    let mut rows = search_page(db, owner, &terms, offset, limit, cap).await?;
    if (rows.len() as i64) < limit {
        rows = search_page(db, owner, &terms, offset, limit, i64::MAX).await?;
    }
    Ok(rows
        .into_iter()
        .map(|(thread_id, message_id, raw, at, title)| {
            let (snippet, highlights) = highlighted(&raw);
            Hit {
                thread_id,
                title,
                message_id: (!message_id.is_empty()).then_some(message_id),
                snippet,
                highlights,
                at,
            }
        })
        .collect())
}

type HitRow = (String, String, String, i64, Option<String>);

/// One page of hits, each group cut to its `cap` best candidates first.
async fn search_page(
    db: &Db,
    owner: &str,
    terms: &[Term],
    offset: i64,
    limit: i64,
    cap: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    let visible = "JOIN threads t ON t.id = d.thread_id AND t.owner = $4 \
        LEFT JOIN messages m ON m.thread_id = d.thread_id AND m.id = d.message_id \
        WHERE (d.message_id = '' OR (m.id IS NOT NULL AND NOT m.hidden))";
    match db {
        Db::Sqlite { reader, .. } => {
            // Parameters in order of first appearance: SQLite numbers them that way. `CROSS
            // JOIN`s fix the loop order (candidates, then their documents by
            // rowid, then their thread by id): left to itself the planner walked all the
            // owner's threads for each candidate (0.5 s for a page).
            let sql = format!(
                "WITH c AS ( \
                 SELECT * FROM (SELECT rowid AS rid, 0 AS grp, \
                 bm25(search_docs, 0.0, 10.0, 1.0) AS score FROM search_docs \
                 WHERE search_docs MATCH $1 ORDER BY score, rowid DESC LIMIT $2) \
                 UNION ALL \
                 SELECT * FROM (SELECT rowid AS rid, 1 AS grp, 0.0 AS score FROM search_docs \
                 WHERE search_docs MATCH $3 ORDER BY rowid DESC LIMIT $2)) \
                 SELECT d.thread_id, d.message_id, \
                 CASE WHEN d.message_id = '' THEN d.title ELSE d.body END, d.at, t.title \
                 FROM c CROSS JOIN search_docs d ON d.rowid = c.rid CROSS {visible} \
                 ORDER BY c.grp, c.score, c.rid DESC LIMIT $5 OFFSET $6"
            );
            let rows: Vec<HitRow> = sqlx::query_as(&sql)
                .bind(fts5_query_in(owner, terms, "title"))
                .bind(cap)
                .bind(fts5_query_in(owner, terms, "body"))
                .bind(owner)
                .bind(limit)
                .bind(offset)
                .fetch_all(reader)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(t, m, text, at, title)| (t, m, mark_snippet(&text, terms), at, title))
                .collect())
        }
        Db::Postgres(pool) => {
            // Titles are the documents without a message id.
            let sql = format!(
                "WITH query AS (SELECT to_tsquery('simple', $1) AS q), c AS ( \
                 (SELECT d.thread_id, d.message_id, 0 AS grp, ts_rank(d.tsv, query.q) AS score, \
                 d.at FROM search_docs d, query WHERE d.tsv @@ query.q AND d.message_id = '' \
                 ORDER BY score DESC, d.at DESC LIMIT $2) \
                 UNION ALL \
                 (SELECT d.thread_id, d.message_id, 1, 0.0, d.at FROM search_docs d, query \
                 WHERE d.tsv @@ query.q AND d.message_id <> '' ORDER BY d.at DESC LIMIT $2)) \
                 SELECT d.thread_id, d.message_id, \
                 ts_headline('simple', d.content, query.q, 'StartSel=\u{E000}, \
                 StopSel=\u{E001}, MaxWords=24, MinWords=8, MaxFragments=1, \
                 FragmentDelimiter=…'), d.at, t.title \
                 FROM c JOIN search_docs d ON d.thread_id = c.thread_id \
                 AND d.message_id = c.message_id CROSS JOIN query {visible} \
                 ORDER BY c.grp, c.score DESC, c.at DESC, d.thread_id, d.message_id \
                 LIMIT $3 OFFSET $5"
            );
            sqlx::query_as(&sql)
                .bind(tsquery(owner, terms))
                .bind(cap)
                .bind(limit)
                .bind(owner)
                .bind(offset)
                .fetch_all(pool)
                .await
        }
    }
}

/// The ids of `owner`'s threads with a title or message matching `q`: the `cap` most recently
/// active, newest first.
pub async fn matching_threads(
    db: &Db,
    owner: &str,
    q: &str,
    cap: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let terms = terms(q);
    if terms.is_empty() {
        return Ok(vec![]);
    }
    // `$1` is the owner, `$2` the query (SQLite numbers `$N` by first appearance).
    let visible = "JOIN threads t ON t.id = d.thread_id AND t.owner = $1 \
        LEFT JOIN messages m ON m.thread_id = d.thread_id AND m.id = d.message_id \
        WHERE (d.message_id = '' OR (m.id IS NOT NULL AND NOT m.hidden))";
    let (sql, query) = match db.backend() {
        Backend::Sqlite => (
            format!(
                "SELECT d.thread_id FROM search_docs d {visible} AND search_docs MATCH $2 \
                 GROUP BY d.thread_id, t.last_activity_at ORDER BY t.last_activity_at DESC LIMIT $3"
            ),
            fts5_query(owner, &terms),
        ),
        Backend::Postgres => (
            format!(
                "SELECT d.thread_id FROM search_docs d {visible} \
                 AND d.tsv @@ to_tsquery('simple', $2) \
                 GROUP BY d.thread_id, t.last_activity_at ORDER BY t.last_activity_at DESC LIMIT $3"
            ),
            tsquery(owner, &terms),
        ),
    };
    let args: Vec<Arg> = vec![owner.into(), query.into(), cap.into()];
    on_read!(db, pool => bind_args!(sqlx::query_scalar(&sql), &args).fetch_all(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn snippets_mark_prefix_matches_around_the_first_one() {
        let marked = |text: &str, q: &str| highlighted(&mark_snippet(&segment(text), &terms(q)));
        assert_eq!(
            marked("Rust ownership rules", "own"),
            ("Rust ownership rules".into(), vec![(5, 14)])
        );
        let long: String = (0..60).map(|i| format!("w{i} ")).collect();
        let (text, ranges) = marked(&long, "w40");
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!(
            &text.chars().skip(ranges[0].0).take(3).collect::<String>(),
            "w40"
        );
        assert_eq!(
            marked("東京 is big", "東京"),
            ("東京 is big".into(), vec![(0, 2)])
        );
        assert_eq!(
            marked("café au lait", "cafe").1,
            vec![],
            "folded matches stay unmarked"
        );
        assert_eq!(marked("", "x"), (String::new(), vec![]));
    }

    #[test]
    fn chinese_and_japanese_characters_are_indexed_one_by_one_and_joined_back() {
        assert_eq!(segment("ab東京cd"), "ab 東 京 cd");
        for text in ["东京 is big", "ab東京cd", "plain words"] {
            assert_eq!(unsegment(&segment(text)), text);
        }
    }

    #[test]
    fn queries_are_words_as_prefixes_and_runs_as_phrases() {
        assert_eq!(
            terms("Rust's  ownership, 東京!"),
            [
                Term::Word("rust".into()),
                Term::Word("s".into()),
                Term::Word("ownership".into()),
                Term::Phrase(vec!["東".into(), "京".into()])
            ]
        );
        let t = terms("café 東京");
        assert_eq!(
            fts5_query("0a-B", &t),
            "owner : \"o0ab\" AND {title body} : (\"café\"* AND \"東 京\")"
        );
        assert_eq!(tsquery("0a-B", &t), "'o0ab' & 'café':* & ('東' <-> '京')");
        assert!(terms("!!! ---").is_empty(), "no terms, no query");
        assert!(
            terms("\"); DROP TABLE x; --")
                .iter()
                .all(|t| matches!(t, Term::Word(w) if w.chars().all(char::is_alphanumeric)))
        );
    }

    #[test]
    fn snippets_lose_their_markers_and_keep_the_ranges() {
        let (text, ranges) = highlighted("a \u{E000}big\u{E001} deal");
        assert_eq!(text, "a big deal");
        assert_eq!(ranges, [(2, 5)]);
    }

    #[test]
    fn a_reply_is_collected_while_it_streams_and_indexed_when_it_ends() {
        let at = DateTime::UNIX_EPOCH;
        let chunks = apply_generation(
            "g",
            GenerationEvent::ChunksAppended {
                first_index: 0,
                chunks: vec![
                    Chunk::Reasoning {
                        text: "think".into(),
                    },
                    Chunk::Text {
                        text: "an answer".into(),
                    },
                ],
            },
        );
        assert_eq!(
            chunks,
            [Change::AppendPending {
                generation_id: "g".into(),
                text: "an answer".into()
            }]
        );
        let ended = apply_generation("g", GenerationEvent::GenerationStopped { at });
        assert_eq!(
            ended,
            [Change::IndexPending {
                generation_id: "g".into(),
                at: 0
            }]
        );
    }

    #[test]
    fn titles_are_replaced_on_rename_and_threads_leave_with_their_documents() {
        let at = DateTime::UNIX_EPOCH;
        let renamed = apply_thread(
            "t",
            ThreadEvent::ThreadRenamed {
                title: threadline_domain::values::Title::parse("New").unwrap(),
                source: threadline_domain::thread::TitleSource::User,
                at,
            },
        );
        assert!(
            matches!(&renamed[..], [Change::DeleteDoc { .. }, Change::Doc { title, .. }] if title == "New")
        );
        assert_eq!(
            apply_thread("t", ThreadEvent::ThreadDeleted { at }),
            [Change::DeleteThread {
                thread_id: "t".into()
            }]
        );
    }
}
