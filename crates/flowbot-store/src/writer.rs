//! Group commit: one task per process owns a write connection and runs every write, taking
//! as many as are waiting into one transaction. Concurrent acceptances therefore share a
//! commit (and its fsync) instead of paying one each, and SQLite never sees two writers.
//!
//! Each write runs inside its own savepoint, so one failing write (a constraint, a lost
//! lease) does not undo the others in its batch. A caller hears back only after the batch
//! committed: an acknowledged write is durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::{Backend, Result, StoreError, StoreMetrics};

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 512;

/// Told the batch's fate once it is known.
type Finisher = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// A write: runs on the writer's connection inside the batch transaction and says whether
/// it succeeded (so its savepoint is released or rolled back). Given no connection (the
/// database cannot be reached) it runs nothing and waits to be told why.
type Job = Box<
    dyn for<'c> FnOnce(Option<&'c mut AnyConnection>) -> BoxFuture<'c, (bool, Finisher)> + Send,
>;

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    pub(crate) fn start(
        options: AnyConnectOptions,
        backend: Backend,
        metrics: Arc<StoreMetrics>,
    ) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, options, backend, metrics));
        Writer { jobs: tx }
    }

    /// Run `f` in the next batch and return its result once the batch has committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => f(conn).await,
                    None => Err(StoreError::Closed),
                };
                let ok = result.is_ok();
                let finish: Finisher = Box::new(move |commit| {
                    let outcome = match commit {
                        Ok(()) => result,
                        // The work was undone with its batch; say so rather than report
                        // a success that did not last.
                        Err(e) => Err(StoreError::Commit(e)),
                    };
                    let _ = tx.send(outcome);
                });
                (ok, finish)
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    options: AnyConnectOptions,
    backend: Backend,
    metrics: Arc<StoreMetrics>,
) {
    let mut conn: Option<AnyConnection> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match connect(&options, backend).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, writes = batch.len(), "the database cannot be reached");
                    refuse(batch, format!("the database cannot be reached: {e}")).await;
                    // Do not hammer a database that is down.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match run_batch(c, batch, backend).await {
            Ok(n) => {
                metrics.commits.fetch_add(1, Ordering::Relaxed);
                metrics.writes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a write batch failed; reconnecting for the next one");
                // The connection may be broken (a database restart): start afresh.
                conn = None;
            }
        }
    }
}

/// Tell every job of a batch that could not run why.
async fn refuse(batch: Vec<Job>, msg: String) {
    for job in batch {
        let (_, finish) = job(None).await;
        finish(Err(msg.clone()));
    }
}

/// Run a batch in one transaction; every job's finisher is called exactly once.
async fn run_batch(
    conn: &mut AnyConnection,
    batch: Vec<Job>,
    backend: Backend,
) -> std::result::Result<usize, String> {
    // Each write runs inside savepoint `w`, so a failed one is undone alone. Savepoint
    // changes ride with the next statement's round trip: one per write instead of two,
    // which is most of a write's cost on PostgreSQL over a network.
    let begin = match backend {
        // IMMEDIATE takes the write lock up front instead of failing to upgrade later.
        Backend::Sqlite => "BEGIN IMMEDIATE; SAVEPOINT w",
        Backend::Postgres => "BEGIN; SAVEPOINT w",
    };
    if let Err(e) = conn.execute(begin).await {
        let msg = e.to_string();
        let _ = conn.execute("ROLLBACK").await;
        refuse(batch, msg.clone()).await;
        return Err(msg);
    }
    let n = batch.len();
    let mut finishers: Vec<Finisher> = Vec::with_capacity(n);
    let mut broken: Option<String> = None;
    for (i, job) in batch.into_iter().enumerate() {
        if broken.is_some() {
            finishers.push(job(None).await.1);
            continue;
        }
        let (ok, finish) = job(Some(&mut *conn)).await;
        finishers.push(finish);
        let last = i + 1 == n;
        let end = match (ok, last) {
            // COMMIT releases it.
            (true, true) => Ok(()),
            (true, false) => conn
                .execute("RELEASE SAVEPOINT w; SAVEPOINT w")
                .await
                .map(|_| ()),
            // The savepoint stays established after ROLLBACK TO, ready for the next write.
            (false, _) => conn.execute("ROLLBACK TO SAVEPOINT w").await.map(|_| ()),
        };
        if let Err(e) = end {
            broken = Some(e.to_string());
        }
    }
    let commit = match &broken {
        None => conn
            .execute("COMMIT")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e.clone())
        }
    };
    for f in finishers {
        f(commit.clone());
    }
    commit.map(|()| n)
}

async fn connect(options: &AnyConnectOptions, backend: Backend) -> sqlx::Result<AnyConnection> {
    let mut conn = options.connect().await?;
    crate::configure(&mut conn, backend).await?;
    Ok(conn)
}
