//! Group commit for generation events: every writer on this node hands its rows to one task,
//! which inserts whatever has queued up in a single transaction. Under load one commit carries
//! the chunk batches of many replies; when idle a batch is one reply's rows, committed at once.

use threadline_domain::generation::GenerationEvent;
use threadline_projections::{Backend, Db, Stmt};
use tokio::sync::{mpsc, oneshot};

use cqrs_es::DomainEvent;

/// Rows per transaction at most.
const MAX_ROWS: usize = 2_000;

/// A failed append (the rows of that request were not written).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot append generation events: {0}")]
pub struct AppendError(pub String);

struct Job {
    rows: Vec<Stmt>,
    done: oneshot::Sender<Result<(), AppendError>>,
}

/// Handle on the appender task.
#[derive(Clone)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
    backend: Backend,
}

impl Appender {
    /// Starts the appender task on `db`.
    pub fn start(db: Db) -> Self {
        let (jobs, rx) = mpsc::channel(4096);
        let backend = db.backend();
        tokio::spawn(run(db, rx));
        Self { jobs, backend }
    }

    /// Durably appends events of generation `id` at sequences `first_sequence..`.
    pub async fn append(
        &self,
        id: &str,
        first_sequence: i64,
        events: &[GenerationEvent],
        metadata: &serde_json::Value,
    ) -> Result<(), AppendError> {
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let payload = serde_json::to_string(event).map_err(|e| AppendError(e.to_string()))?;
            rows.push(insert(
                self.backend,
                id,
                first_sequence + i as i64,
                &event.event_type(),
                payload,
                metadata.to_string(),
            ));
        }
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { rows, done })
            .await
            .map_err(|_| AppendError("the appender has stopped".into()))?;
        wait.await
            .map_err(|_| AppendError("the appender has stopped".into()))?
    }
}

fn insert(
    backend: Backend,
    id: &str,
    sequence: i64,
    event_type: &str,
    payload: String,
    metadata: String,
) -> Stmt {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) VALUES ('Generation', $1, $2, $3, '1.0', $4, $5)"
        }
        Backend::Postgres => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) VALUES ('Generation', $1, $2, $3, '1.0', $4::json, $5::json)"
        }
    };
    Stmt::new(
        sql,
        vec![
            id.into(),
            sequence.into(),
            event_type.into(),
            payload.into(),
            metadata.into(),
        ],
    )
}

async fn run(db: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut rows = jobs[0].rows.len();
        while rows < MAX_ROWS {
            let Ok(job) = rx.try_recv() else { break };
            rows += job.rows.len();
            jobs.push(job);
        }
        let all: Vec<Stmt> = jobs.iter().flat_map(|j| j.rows.iter().cloned()).collect();
        match commit(&db, &all).await {
            Ok(()) => {
                for job in jobs {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) if jobs.len() > 1 => {
                // One bad request must not fail the others: retry each on its own.
                tracing::debug!(error = %e, "group commit failed; committing requests one by one");
                for job in jobs {
                    let result = commit(&db, &job.rows)
                        .await
                        .map_err(|e| AppendError(e.to_string()));
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.done.send(Err(AppendError(e.to_string())));
                }
            }
        }
    }
}

async fn commit(db: &Db, rows: &[Stmt]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    tx.execute_batch(rows).await?;
    tx.commit().await
}
