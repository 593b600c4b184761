//! Group commit: one task per process owns a write connection and runs every write, taking
//! as many as are waiting into one transaction. Concurrent acceptances therefore share a
//! commit (and its fsync) instead of paying one each, and SQLite never sees two writers.
//!
//! A write runs inside its own savepoint, so one failing write (a constraint, a lost
//! lease) does not undo the others in its batch. A *bare* write (`write_bare`: the hot
//! path's enqueue, step records and conclusion) runs without one, saving a round trip (on
//! SQLite a thread hand-off) per write: it promises to have written nothing when it fails
//! other than by a database error, and a database error in it fails its whole batch (its
//! statements fail only when the database does, and then the batch would fail anyway).
//! A caller hears back only after the batch committed: an acknowledged write is durable.

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

/// How a write went, for the batch around it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    Ok,
    /// Failed having written nothing (a lost lease found by a statement's row count).
    Clean,
    /// Failed, possibly half done: undo it (its savepoint), or fail the batch (a bare write).
    Dirty,
}

/// A write: runs on the writer's connection inside the batch transaction and says how it
/// went. Given no connection (the database cannot be reached) it runs nothing and waits to
/// be told why.
type Run = Box<
    dyn for<'c> FnOnce(Option<&'c mut AnyConnection>) -> BoxFuture<'c, (Done, Finisher)> + Send,
>;

struct Job {
    /// Runs inside a savepoint of its own.
    shielded: bool,
    run: Run,
}

/// Whether savepoint `w` exists and nothing was written since it was set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    None,
    Clean,
    Used,
}

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

    /// Run `f` in the next batch, in a savepoint of its own, and return its result once the
    /// batch has committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Run `f` in the next batch without a savepoint. `f` must write nothing before it
    /// returns an error other than [`StoreError::Database`]; such an error fails the batch.
    pub(crate) async fn write_bare<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<T, F>(&self, shielded: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => f(conn).await,
                    None => Err(StoreError::Closed),
                };
                let done = match &result {
                    Ok(_) => Done::Ok,
                    Err(StoreError::Database(_)) => Done::Dirty,
                    Err(_) if shielded => Done::Dirty,
                    Err(_) => Done::Clean,
                };
                let finish: Finisher = Box::new(move |commit| {
                    let outcome = match commit {
                        Ok(()) => result,
                        // The work was undone with its batch; say so rather than report
                        // a success that did not last.
                        Err(e) => Err(StoreError::Commit(e)),
                    };
                    let _ = tx.send(outcome);
                });
                (done, finish)
            })
        });
        let job = Job { shielded, run };
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
        let (_, finish) = (job.run)(None).await;
        finish(Err(msg.clone()));
    }
}

/// Run a batch in one transaction; every job's finisher is called exactly once.
async fn run_batch(
    conn: &mut AnyConnection,
    batch: Vec<Job>,
    backend: Backend,
) -> std::result::Result<usize, String> {
    let begin = match backend {
        // IMMEDIATE takes the write lock up front instead of failing to upgrade later.
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
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
    let mut savepoint = Savepoint::None;
    let mut notify = false;
    for job in batch {
        if broken.is_some() {
            finishers.push((job.run)(None).await.1);
            continue;
        }
        // A shielded write needs a savepoint set after the last write; setting it rides
        // with releasing the previous one (one round trip).
        if job.shielded && savepoint != Savepoint::Clean {
            let sql = match savepoint {
                Savepoint::None => "SAVEPOINT w",
                _ => "RELEASE SAVEPOINT w; SAVEPOINT w",
            };
            if let Err(e) = conn.execute(sql).await {
                broken = Some(e.to_string());
                finishers.push((job.run)(None).await.1);
                continue;
            }
            savepoint = Savepoint::Clean;
        }
        let (done, finish) = ANNOUNCE
            .scope(std::cell::Cell::new(false), async {
                let out = (job.run)(Some(&mut *conn)).await;
                notify |= ANNOUNCE.with(|a| a.get());
                out
            })
            .await;
        finishers.push(finish);
        match (done, job.shielded) {
            (Done::Ok, _) => {
                if savepoint == Savepoint::Clean {
                    savepoint = Savepoint::Used;
                }
            }
            (Done::Clean, _) => {}
            // The savepoint stays established after ROLLBACK TO, ready for the next write.
            (Done::Dirty, true) => {
                if let Err(e) = conn.execute("ROLLBACK TO SAVEPOINT w").await {
                    broken = Some(e.to_string());
                }
            }
            (Done::Dirty, false) => {
                broken = Some("a write of the batch failed".to_string());
            }
        }
    }
    let commit = match &broken {
        None => {
            // Other processes' workers hear of the batch's queued runs once, with the
            // commit (NOTIFY is delivered only if the transaction commits).
            let sql = if notify && backend == Backend::Postgres {
                NOTIFY_AND_COMMIT
            } else {
                "COMMIT"
            };
            conn.execute(sql)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
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

/// `NOTIFY` on [`crate::RUNS_CHANNEL`] (checked by a test) and commit, in one round trip.
const NOTIFY_AND_COMMIT: &str = "SELECT pg_notify('flowbot_runs', ''); COMMIT";

#[cfg(test)]
#[test]
fn the_batch_notifies_the_runs_channel() {
    assert!(NOTIFY_AND_COMMIT.contains(&format!("'{}'", crate::RUNS_CHANNEL)));
}

tokio::task_local! {
    /// Set by a write that queued a run (`announce`), for the writer to notify once per batch.
    static ANNOUNCE: std::cell::Cell<bool>;
}

/// Ask the writer to tell other processes, with this batch's commit, that runs were
/// queued. False when not called inside a write (the caller must notify itself).
pub(crate) fn announce() -> bool {
    ANNOUNCE.try_with(|a| a.set(true)).is_ok()
}

async fn connect(options: &AnyConnectOptions, backend: Backend) -> sqlx::Result<AnyConnection> {
    let mut conn = options.connect().await?;
    crate::configure(&mut conn, backend).await?;
    Ok(conn)
}
