//! flowbot's durable store and run queue: flows and their versions, connections (their
//! settings encrypted), the event inbox, runs and step records, over SQLite (the embedded
//! default) or PostgreSQL (many workers sharing one database).
//!
//! SQL lives only here. Both backends run the same statements through sqlx's `Any` driver
//! (numbered `$N` parameters, integers as 64-bit, times as Unix milliseconds, JSON as text);
//! where they differ (row locking) the statement says so.
//!
//! Every write goes through a writer task that groups concurrent writes into one
//! transaction, so N concurrent acceptances cost far fewer than N fsyncs (see [`writer`]).
//! SQLite has one writer per process (it allows one write transaction at a time);
//! PostgreSQL has two: the intake (events and their runs, the acceptance path) and one for
//! everything else, so an acceptance never waits behind the workers' writes. The intake's
//! writes insert rows and lock no existing run; the one lock they can wait for is a flow
//! row being deleted (PostgreSQL breaks the rare cycle that makes, failing one batch).
//! The store never holds a transaction across a call to an app: the worker
//! claims (commit), calls, then records (commit).

mod app_files;
mod audit;
mod auth;
pub mod crypto;
mod files;
mod flows;
mod inbox;
pub mod notify;
mod pending;
mod people;
mod progress;
mod projects;
mod queue;
mod retention;
mod runs;
mod schedule;
mod sso;
mod tables;
pub mod telemetry;
mod two_factor;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowbot_core::{Clock, SystemClock};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use app_files::StoredApp;
pub use audit::{Actor, AuditEntry, AuditFilter};
pub use auth::{ApiTokenInfo, Invitation, Member, NewUser, Profile, Role, SessionInfo, User};
pub use crypto::Cipher;
pub use files::FileInfo;
pub use flows::{is_webhook_token, new_token as new_webhook_token, NewFlow};
pub use flows::{ConnectionInfo, FlowInfo, FlowVersion};
pub use inbox::{EnqueueOutcome, EventInfo, NewEvent, Source};
pub use pending::PendingOauth;
pub use people::{
    Choice, Decided, Decider, LinkedRequest, Person, PersonDecision, RequestInfo, STARTER_HEADER,
};
pub use projects::{Project, ProjectOf, ProjectRole, DEFAULT_PROJECT};
pub use queue::{Claimed, Lease};
pub use retention::Retention;
pub use runs::{RunFilter, RunInfo, RunStatus};
pub use schedule::{MissedSlots, Schedule, SlotDecision};
pub use sso::PendingSso;
pub use tables::{
    FilterOp, Page, RowFilter, RowOp, RowProblem, RowQuery, RunTables, TableInfo,
    Writer as RowWriter, Written, COUNT_CAP, MAX_PAGE, MAX_ROWS_PER_WRITE,
};
pub use telemetry::{ApiUsageReading, Telemetry};
pub use two_factor::TwoFactor;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why the store refused or failed. Callers decide what to do by kind: not found, a
/// conflict with what is stored, a lost lease, a configuration to fix, or a transient
/// failure worth trying again ([`StoreError::is_transient`] is the one rule for that).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Classified by [`StoreError::is_transient`] and [`StoreError::is_unique_violation`].
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the write could not be committed: {0}")]
    Commit(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("flow `{0}` not found")]
    FlowNotFound(String),
    #[error("run `{0}` not found")]
    RunNotFound(String),
    #[error("connection `{0}` not found")]
    ConnectionNotFound(String),
    /// Anything else asked for by id that is not there (an API token…).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is stored: a name taken, a run already finished, a
    /// connection still in use.
    #[error("{0}")]
    Conflict(String),
    /// Rows (or a table's columns) that cannot be written, each problem named: nothing
    /// of the write was kept.
    #[error("{}", describe_rows(.0))]
    InvalidRows(Vec<tables::RowProblem>),
    /// The worker no longer holds the run (its lease expired, or the run was canceled):
    /// it must change nothing about it.
    #[error("run {0} is no longer held by this worker (its lease expired, or it was canceled)")]
    LeaseLost(String),
    /// The configuration cannot work (a DATABASE_URL of an unknown kind…).
    #[error("{0}")]
    InvalidConfig(String),
    #[error("another flowbot process is already using {0}: stop it, or give this one another --data-dir")]
    Locked(PathBuf),
    #[error("secret key: {0}")]
    Key(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// Worth trying again later: the database could not be reached or was busy, the commit
    /// failed, or the store is shutting down. Everything else will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Commit(_) | StoreError::Closed => true,
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // Serialization failures and deadlocks (PostgreSQL), a busy or locked
                // database (SQLite), and a server shutting down or out of connections.
                sqlx::Error::Database(d) => matches!(
                    d.code().as_deref(),
                    Some("40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "5" | "6")
                ),
                _ => false,
            },
            _ => false,
        }
    }

    /// A unique constraint refused the write: the thing exists already.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The PostgreSQL notification channel of queued runs.
pub(crate) const RUNS_CHANNEL: &str = "flowbot_runs";

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` for PostgreSQL; `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Holds the SQLite file, its lock and the secret key file.
    pub data_dir: PathBuf,
    /// The master key (base64 of 32 bytes); when absent, a key file in `data_dir` is used,
    /// created on first start.
    pub secret_key: Option<String>,
}

impl StoreConfig {
    /// SQLite in `data_dir`, with the key file there.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            database_url: None,
            data_dir: data_dir.into(),
            secret_key: None,
        }
    }

    /// From the environment: `DATABASE_URL`, `FLOWBOT_SECRET_KEY`, and the given data dir.
    pub fn from_env(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            database_url: std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()),
            data_dir: data_dir.into(),
            secret_key: std::env::var("FLOWBOT_SECRET_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// Counters a test or `/metrics` can read.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Transactions committed by the writer.
    pub commits: AtomicU64,
    /// Writes those transactions carried.
    pub writes: AtomicU64,
}

/// The store. Cheap to clone; every clone shares the pool and the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    pool: AnyPool,
    writer: writer::Writer,
    /// Where arriving events are written: on PostgreSQL a second writer, on SQLite the one.
    intake: writer::Writer,
    /// Replaced during a key rotation; read for every seal and open.
    cipher: std::sync::RwLock<crypto::Cipher>,
    clock: Arc<dyn Clock>,
    metrics: Arc<StoreMetrics>,
    telemetry: telemetry::Telemetry,
    /// Woken when this process queues a run that is due now, so its workers need not wait
    /// for their next poll.
    /// Wakes "test trigger" waiters in this process when a capture is filled.
    captured: tokio::sync::Notify,
    wake: tokio::sync::Notify,
    /// The PostgreSQL URL, for the LISTEN connection that hears other processes' runs.
    pg_url: Option<String>,
    data_dir: PathBuf,
    /// Held for the store's lifetime: a second process on the same SQLite file is refused.
    _lock: Option<std::fs::File>,
    flows_cache: FlowsCache,
    /// When a claim last looked for expired leases (store clock, ms).
    expired_checked_at: std::sync::atomic::AtomicI64,
    /// Step records of several runs waiting to share one statement (`record_steps`).
    pending_records: std::sync::Mutex<Vec<queue::PendingRecords>>,
}

/// How long answers about a flow (its decrypted connections, the flow a webhook names) are
/// reused without asking the database: a change made by another process (a cluster's web
/// server) is seen within this time; this process's own changes at once.
const FLOWS_FRESH: Duration = Duration::from_secs(2);

/// Answers about flows reused across runs and webhooks; `generation` moves whenever this
/// process changes a flow, a connection or a flow's slots, which makes every answer stale.
#[derive(Default)]
struct FlowsCache {
    generation: std::sync::atomic::AtomicU64,
    /// Flow id → slot → connection: [`Store::flow_connections`].
    connections: Fresh<std::collections::HashMap<String, flowbot_core::Connection>>,
    /// Flow id → the flow: [`Store::flow_for_webhook`].
    infos: Fresh<FlowInfo>,
}

/// Answers by flow id, each with the generation it was read under and when.
struct Fresh<T>(std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant, T)>>);

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh(std::sync::Mutex::default())
    }
}

impl<T: Clone> Fresh<T> {
    /// The answer for `id`, if it was read under `generation` within [`FLOWS_FRESH`].
    fn get(&self, id: &str, generation: u64) -> Option<T> {
        let entries = self.0.lock().expect("flows cache");
        let (gen, at, value) = entries.get(id)?;
        (*gen == generation && at.elapsed() < FLOWS_FRESH).then(|| value.clone())
    }

    /// Keep an answer read under `generation` (at most 1,024: then they start afresh).
    fn put(&self, id: &str, generation: u64, value: T) {
        let mut entries = self.0.lock().expect("flows cache");
        if entries.len() >= 1024 {
            entries.clear();
        }
        entries.insert(
            id.to_string(),
            (generation, std::time::Instant::now(), value),
        );
    }
}

/// Counters of PostgreSQL's work (see [`Store::database_activity`]); subtract two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatabaseActivity {
    /// Transactions committed in this database (reads included).
    pub commits: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    /// Rows read by scans and index look-ups.
    pub rows_read: i64,
    /// WAL records and bytes written by the whole server.
    pub wal_records: i64,
    pub wal_bytes: i64,
    /// Times the server flushed its WAL to disk (one flush commits every waiting
    /// transaction: group commit).
    pub wal_syncs: i64,
}

impl std::ops::Sub for DatabaseActivity {
    type Output = DatabaseActivity;
    fn sub(self, o: DatabaseActivity) -> DatabaseActivity {
        DatabaseActivity {
            commits: self.commits - o.commits,
            rows_inserted: self.rows_inserted - o.rows_inserted,
            rows_updated: self.rows_updated - o.rows_updated,
            rows_deleted: self.rows_deleted - o.rows_deleted,
            rows_read: self.rows_read - o.rows_read,
            wal_records: self.wal_records - o.wal_records,
            wal_bytes: self.wal_bytes - o.wal_bytes,
            wal_syncs: self.wal_syncs - o.wal_syncs,
        }
    }
}

impl Store {
    /// Open (creating and migrating as needed) the store the config describes.
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Store::open`], with an injected clock (tests schedule retries without sleeping).
    pub async fn open_with_clock(config: &StoreConfig, clock: Arc<dyn Clock>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        private_dir(&config.data_dir)?;
        let (backend, url, lock) = match &config.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (Backend::Postgres, url.clone(), None)
            }
            Some(url) if url.starts_with("sqlite:") => (
                Backend::Sqlite,
                url.clone(),
                Some(lock_file(&config.data_dir)?),
            ),
            Some(other) => {
                return Err(StoreError::InvalidConfig(format!(
                    "DATABASE_URL must start with postgres:// or sqlite:, not `{}`",
                    other.split(':').next().unwrap_or(other)
                )))
            }
            None => {
                let lock = lock_file(&config.data_dir)?;
                let path = config.data_dir.join("flowbot.db");
                private_file(&path)?;
                (
                    Backend::Sqlite,
                    format!("sqlite://{}?mode=rwc", path.display()),
                    Some(lock),
                )
            }
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every read put a round trip (on SQLite a thread hand-off) in
            // front of each read. sqlx still pings a connection when it is given back, off
            // the caller's path, and drops a broken one there; a database restart fails
            // at most the read that found its connection broken, which callers see as
            // transient (ingress answers 503 with Retry-After).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    configure(conn, backend).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        if backend == Backend::Sqlite {
            // Before any table exists, auto-vacuum takes effect without a VACUUM.
            pool.execute("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;")
                .await?;
        }
        migrate(&pool, backend).await?;
        if backend == Backend::Sqlite {
            let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
                .fetch_one(&pool)
                .await?;
            if mode != 2 {
                // 2 = INCREMENTAL; VACUUM rebuilds the file with it (outside any transaction).
                pool.execute("PRAGMA auto_vacuum = INCREMENTAL").await?;
                pool.execute("VACUUM").await?;
            }
        }
        let cipher = crypto::Cipher::load(config.secret_key.as_deref(), &config.data_dir)?;
        let metrics = Arc::new(StoreMetrics::default());
        let writer = writer::Writer::start(options.clone(), backend, metrics.clone());
        let intake = match backend {
            Backend::Postgres => writer::Writer::start(options, backend, metrics.clone()),
            Backend::Sqlite => writer.clone(),
        };
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                pool,
                writer,
                intake,
                cipher: std::sync::RwLock::new(cipher),
                clock,
                metrics,
                telemetry: telemetry::Telemetry::default(),
                wake: tokio::sync::Notify::new(),
                captured: tokio::sync::Notify::new(),
                pg_url: (backend == Backend::Postgres).then(|| url.clone()),
                data_dir: config.data_dir.clone(),
                _lock: lock,
                flows_cache: FlowsCache::default(),
                expired_checked_at: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
                pending_records: std::sync::Mutex::new(Vec::new()),
            }),
        };
        store.finish_key_rotation().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// Resolves when this process next queues a due run (see [`Store::wake_workers`]).
    pub fn queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.wake.notified()
    }

    pub(crate) fn wake_workers(&self) {
        self.inner.wake.notify_waiters();
    }

    /// On PostgreSQL, wake this process's workers whenever any process queues a run (the
    /// enqueue sends `NOTIFY flowbot_runs` with its commit). Polling remains the fallback:
    /// a lost listening connection only slows pickup down. Runs until `stop`.
    pub async fn listen_for_runs(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(url) = self.inner.pg_url.clone() else {
            return;
        };
        while !stop.is_cancelled() {
            let listened = async {
                let mut l = sqlx::postgres::PgListener::connect(&url).await?;
                l.listen(RUNS_CHANNEL).await?;
                loop {
                    l.recv().await?;
                    self.wake_workers();
                }
            };
            let result: std::result::Result<(), sqlx::Error> = tokio::select! {
                r = listened => r,
                _ = stop.cancelled() => return,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "listening for queued runs failed; polling until it reconnects");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// This process's Prometheus metrics.
    pub fn telemetry(&self) -> &telemetry::Telemetry {
        &self.inner.telemetry
    }

    /// What PostgreSQL has done so far: this database's transactions and rows
    /// (`pg_stat_database`) and the server's WAL (`pg_stat_wal`): the inputs of the scaling
    /// model in docs/scaling.md. `None` on SQLite. PostgreSQL publishes a session's counts
    /// up to ten seconds after it goes idle: read them that long after the work.
    pub async fn database_activity(&self) -> Result<Option<DatabaseActivity>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let (commits, inserted, updated, deleted, returned, wal_records, wal_bytes, wal_syncs): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT d.xact_commit, d.tup_inserted, d.tup_updated, d.tup_deleted, \
               d.tup_returned + d.tup_fetched, w.wal_records, w.wal_bytes::bigint, w.wal_sync \
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(Some(DatabaseActivity {
            commits,
            rows_inserted: inserted,
            rows_updated: updated,
            rows_deleted: deleted,
            rows_read: returned,
            wal_records,
            wal_bytes,
            wal_syncs,
        }))
    }

    /// Transactions the writer has committed so far.
    pub fn commits(&self) -> u64 {
        self.inner.metrics.commits.load(Ordering::Relaxed)
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now().as_millisecond()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

/// Per-connection settings. Durability first: a 2xx is only given after the event is on
/// disk, so SQLite runs WAL with synchronous=FULL and PostgreSQL keeps synchronous_commit on.
async fn configure(conn: &mut sqlx::AnyConnection, backend: Backend) -> sqlx::Result<()> {
    match backend {
        Backend::Sqlite => {
            // The wait for a lock first, so the others wait rather than fail. The journal
            // mode and auto-vacuum belong to the file and are set once, at open: asking for
            // them on every new connection takes a lock the busy writer may hold.
            conn.execute(
                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON;",
            )
            .await?;
        }
        Backend::Postgres => {
            conn.execute("SET synchronous_commit = on; SET application_name = 'flowbot'")
                .await?;
        }
    }
    Ok(())
}

/// The data directory holds the database and the secret key: made readable by its owner
/// only (0700) when flowbot creates it. A directory that exists is left as its owner set it.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The SQLite file is created (or tightened to) 0600 before SQLite opens it; SQLite gives
/// its `-wal` and `-shm` files the same permissions as the database file.
fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    for suffix in ["-wal", "-shm"] {
        let side = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        if side.exists() {
            std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

fn lock_file(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("flowbot.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}

/// The migrations, embedded in the binary: every file of `migrations/sqlite` and
/// `migrations/postgres`, in order (`build.rs` lists them).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType};
    use std::borrow::Cow;
    let files = match backend {
        Backend::Sqlite => embedded::SQLITE,
        Backend::Postgres => embedded::POSTGRES,
    };
    let migrations: Vec<Migration> = files
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Apply pending migrations (also done by [`Store::open`]; `flowbot migrate` calls it alone).
pub async fn migrate(pool: &AnyPool, backend: Backend) -> Result<()> {
    migrator(backend).run(pool).await?;
    Ok(())
}

/// A new random id (time-ordered, so ids sort roughly by creation).
fn describe_rows(p: &[tables::RowProblem]) -> String {
    let shown: Vec<String> = p
        .iter()
        .take(5)
        .map(|p| match p.column.as_str() {
            "" => format!("row {}: {}", p.index + 1, p.message),
            c => format!("row {}, `{c}`: {}", p.index + 1, p.message),
        })
        .collect();
    let more = if p.len() > 5 {
        format!(" (and {} more)", p.len() - 5)
    } else {
        String::new()
    };
    format!("nothing was written: {}{more}", shown.join("; "))
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
