//! A worker: claims due runs, executes them with the core runner, records every step, and
//! concludes or reschedules each run; it also fires schedules and polls polling triggers.
//!
//! Claim, commit, call, record: no transaction is held while an app is called. A run's
//! lease is extended by a heartbeat; a run whose lease is lost (canceled, or reclaimed after
//! this worker stalled) is abandoned at once, and every write it might still attempt is
//! refused by the lease fence.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::runner::{concurrency_key, dedupe_key, JournalError, StepRecord, StepStatus};
use flowbot_core::{check, Apps, Flow, Journal, RunOutcome, Runner};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long after a run finishes a worker with free slots claims again, for a run its
/// concurrency key held back: long enough for the runs finishing together to share one
/// claim, short beside a run's own duration.
const SUCCESSOR_CLAIM_DELAY: Duration = Duration::from_millis(5);

use flowbot_store::{
    Claimed, Lease, MissedSlots, NewEvent, Retention, Schedule, SlotDecision, Source, Store,
    StoreError,
};

/// What stops the worker or one of its loops.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A flow's schedule (cron expression or time zone) cannot be read.
    #[error("flow `{flow}`: the schedule cannot be used: {message}")]
    Schedule { flow: String, message: String },
    /// A polling trigger's app could not be asked for new items.
    #[error("flow `{flow}`: polling failed: {message}")]
    Poll { flow: String, message: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in leases and logs; unique per process.
    pub id: String,
    /// Runs executed at the same time.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often an idle worker looks for due runs.
    pub idle_poll: Duration,
    /// How long shutdown waits for runs in flight before releasing them.
    pub shutdown_grace: Duration,
    /// Fire schedules and polling triggers (every worker may; each slot fires once).
    pub triggers: bool,
    /// Purge run history by this policy, every `retention_every`.
    pub retention: Option<Retention>,
    pub retention_every: Duration,
    /// Take back, at start, the runs a stopped process left `running` instead of waiting
    /// for their leases ([`Store::reclaim_orphaned_runs`]): for a process's only worker
    /// (on SQLite it takes back every running run).
    pub reclaim_at_start: bool,
    /// How often deadlines of people's requests are checked and new requests told.
    pub people_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: format!(
                "worker-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            concurrency: 64,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(10),
            triggers: true,
            retention: Some(Retention::default()),
            reclaim_at_start: false,
            retention_every: Duration::from_secs(600),
            people_every: Duration::from_secs(2),
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub attempts: u64,
    pub released: u64,
}

pub struct Worker {
    store: Store,
    apps: Apps,
    cfg: WorkerConfig,
    flows: FlowCache,
}

/// Parsed flows by (flow id, version).
type Parsed = HashMap<(String, i64), Arc<Flow>>;

/// Runs this worker holds: run id → (lease, the task executing it).
type Held = Arc<Mutex<HashMap<String, (Lease, tokio::task::AbortHandle)>>>;

/// Parsed flow versions; a version never changes once stored, so it is parsed once.
#[derive(Default, Clone)]
pub struct FlowCache {
    parsed: Arc<Mutex<Parsed>>,
}

impl FlowCache {
    /// The flow version, parsed; an error says why it cannot be used.
    pub async fn get(
        &self,
        store: &Store,
        apps: &Apps,
        flow_id: &str,
        version: i64,
    ) -> std::result::Result<Arc<Flow>, String> {
        if let Some(f) = self
            .parsed
            .lock()
            .expect("flow cache")
            .get(&(flow_id.to_string(), version))
        {
            return Ok(f.clone());
        }
        let v = store
            .flow_version(flow_id, version)
            .await
            .map_err(|e| e.to_string())?;
        let checked = check(&v.yaml, apps);
        let flow = Arc::new(checked.flow.ok_or_else(|| {
            let first = checked
                .diagnostics
                .first()
                .map(|d| d.to_string())
                .unwrap_or_default();
            format!("flow {flow_id} version {version} is no longer valid: {first}")
        })?);
        self.parsed
            .lock()
            .expect("flow cache")
            .insert((flow_id.to_string(), version), flow.clone());
        Ok(flow)
    }
}

/// Step records go to the store, fenced on the run's lease. Records are held here and
/// written together, in one statement, before the next call goes out (with that call's
/// started record when it changes an app) or with the attempt's conclusion: a run writes
/// once per call instead of twice per step.
struct StoreJournal<'a> {
    store: Store,
    lease: Lease,
    held: Mutex<Vec<StepRecord>>,
    /// To know which actions report model usage (their manifests say so).
    apps: &'a Apps,
}

impl StoreJournal<'_> {
    /// Hold `rec` (the store keeps only the latest record of an execution it is given).
    fn hold(&self, rec: &StepRecord) {
        self.held.lock().expect("held records").push(rec.clone());
    }

    fn take(&self) -> Vec<StepRecord> {
        std::mem::take(&mut *self.held.lock().expect("held records"))
    }
}

#[async_trait]
impl Journal for StoreJournal<'_> {
    async fn record(&self, rec: &StepRecord) -> std::result::Result<(), JournalError> {
        self.hold(rec);
        observe_step(self.store.telemetry(), rec);
        observe_usage(self.store.telemetry(), self.apps, rec);
        Ok(())
    }

    async fn before_call(
        &self,
        rec: &StepRecord,
        writes: bool,
    ) -> std::result::Result<(), JournalError> {
        if writes {
            self.hold(rec);
        }
        let records = self.take();
        self.store
            .record_steps(&self.lease, &records)
            .await
            .map_err(|e| JournalError(e.to_string()))?;
        if !writes {
            self.hold(rec);
        }
        observe_step(self.store.telemetry(), rec);
        Ok(())
    }
}

/// App steps feed the latency histogram when they end, and the retry counter when they
/// start again.
fn observe_step(t: &flowbot_store::Telemetry, rec: &StepRecord) {
    let (Some(app), Some(action)) = (&rec.app, &rec.action) else {
        return;
    };
    match (rec.status, rec.finished_at) {
        (StepStatus::Started, _) if rec.attempt > 1 => t.step_retried(app, action),
        (StepStatus::Succeeded | StepStatus::Failed, Some(end)) => {
            let seconds = end.duration_since(rec.started_at).as_secs_f64().max(0.0);
            let status = if rec.status == StepStatus::Succeeded {
                "succeeded"
            } else {
                "failed"
            };
            t.step_finished(app, action, status, seconds);
        }
        _ => {}
    }
}

/// Tokens of a finished step whose action reports a language model's usage: from its
/// output, or from its error's details when it failed after spending them (an extraction
/// that never fit). A record is finished once per execution, so nothing is counted twice.
fn observe_usage(t: &flowbot_store::Telemetry, apps: &Apps, rec: &StepRecord) {
    let (Some(app), Some(action)) = (&rec.app, &rec.action) else {
        return;
    };
    if rec.finished_at.is_none()
        || !apps
            .manifest(app)
            .and_then(|m| m.action(action))
            .is_some_and(|a| a.usage)
    {
        return;
    }
    let usage = rec
        .output
        .as_ref()
        .and_then(|o| o.get("usage"))
        .or_else(|| rec.error.as_ref()?.details.as_ref()?.get("usage"));
    if let Some(u) = usage {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        t.ai_tokens(n("prompt_tokens"), n("completion_tokens"));
    }
}

impl Worker {
    pub fn new(store: Store, apps: Apps, cfg: WorkerConfig) -> Worker {
        Worker {
            store,
            apps,
            cfg,
            flows: FlowCache::default(),
        }
    }

    /// Work until `shutdown` is cancelled; then stop claiming, give runs in flight the grace
    /// period to finish, and release the rest so another worker resumes them.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerStats> {
        let worker = Arc::new(self);
        let mut stats = WorkerStats::default();
        let mut inflight: JoinSet<()> = JoinSet::new();
        let held: Held = Arc::default();
        let stop_side_tasks = CancellationToken::new();
        let started_at = worker.store.clock().now().as_millisecond();
        if let Err(e) = worker.store.worker_seen(&worker.cfg.id, started_at).await {
            tracing::warn!(error = %e, "cannot report this worker as alive");
        }
        if worker.cfg.reclaim_at_start {
            worker.store.reclaim_orphaned_runs(&worker.cfg.id).await?;
        }

        let heartbeat = tokio::spawn(heartbeat_loop(
            worker.clone(),
            started_at,
            held.clone(),
            stop_side_tasks.clone(),
        ));
        let listener = tokio::spawn({
            let store = worker.store.clone();
            let stop = stop_side_tasks.clone();
            async move { store.listen_for_runs(stop).await }
        });
        let triggers = worker
            .cfg
            .triggers
            .then(|| tokio::spawn(trigger_loop(worker.clone(), stop_side_tasks.clone())));
        let retention = worker.cfg.retention.map(|policy| {
            tokio::spawn(retention_loop(
                worker.clone(),
                policy,
                stop_side_tasks.clone(),
            ))
        });

        let people = Some(tokio::spawn(people_loop(
            worker.clone(),
            stop_side_tasks.clone(),
        )));

        tracing::info!(worker = %worker.cfg.id, concurrency = worker.cfg.concurrency, "worker started");
        loop {
            while let Some(done) = inflight.try_join_next() {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a run task panicked: {e}");
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            // Listen before claiming: a run queued between the claim and the wait below
            // still wakes this loop.
            let queued = worker.store.queued();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let capacity = worker.cfg.concurrency.saturating_sub(inflight.len());
            let mut claimed = Vec::new();
            if capacity > 0 {
                match worker
                    .store
                    .claim(&worker.cfg.id, worker.cfg.lease, capacity as i64)
                    .await
                {
                    Ok(c) => claimed = c,
                    Err(e) => tracing::warn!(error = %e, "cannot claim runs"),
                }
            }
            // A claim that filled every free slot may have left due runs behind; one that
            // did not found the queue drained, and claiming again before something changes
            // would only scan the queue for nothing (on PostgreSQL, past the index entries
            // of every run claimed since the last vacuum).
            let filled = capacity > 0 && claimed.len() == capacity;
            for c in claimed {
                stats.attempts += 1;
                let w = worker.clone();
                let run_id = c.lease.run_id.clone();
                let lease = c.lease.clone();
                let held2 = held.clone();
                // Locked across the spawn: a run that ends at once must find itself in
                // `held` to remove, or it would stay there and be reported lost later.
                let mut held = held.lock().expect("held runs");
                let handle = inflight.spawn(async move {
                    let run_id = c.lease.run_id.clone();
                    w.execute(c).await;
                    held2.lock().expect("held runs").remove(&run_id);
                });
                held.insert(run_id, (lease, handle));
            }
            if filled {
                continue;
            }
            // Wait for a run queued in this process (or announced by another), the poll, a
            // free slot when every slot was busy, or — a finished run may make the next run
            // of its concurrency key claimable — a moment after a run finishes, so that the
            // runs finishing in that moment share one claim.
            let mut deadline = tokio::time::Instant::now() + worker.cfg.idle_poll;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = &mut queued => break,
                    _ = shutdown.cancelled() => break,
                    Some(_) = inflight.join_next(), if !inflight.is_empty() => {
                        if capacity == 0 {
                            break;
                        }
                        deadline = deadline.min(tokio::time::Instant::now() + SUCCESSOR_CLAIM_DELAY);
                    }
                }
            }
        }

        // Shutdown: no more claims; let runs in flight finish within the grace period.
        let deadline = tokio::time::sleep(worker.cfg.shutdown_grace);
        tokio::pin!(deadline);
        while !inflight.is_empty() {
            tokio::select! {
                _ = inflight.join_next() => {}
                _ = &mut deadline => break,
            }
        }
        let leftovers: Vec<Lease> = held
            .lock()
            .expect("held runs")
            .drain()
            .map(|(_, (lease, handle))| {
                handle.abort();
                lease
            })
            .collect();
        inflight.shutdown().await;
        for lease in leftovers {
            match worker.store.release(&lease).await {
                Ok(()) => stats.released += 1,
                Err(e) => {
                    tracing::warn!(run_id = %lease.run_id, error = %e, "could not release a run; its lease will expire")
                }
            }
        }
        stop_side_tasks.cancel();
        let _ = heartbeat.await;
        if let Err(e) = worker.store.worker_gone(&worker.cfg.id).await {
            tracing::warn!(error = %e, "cannot report this worker as stopped");
        }
        let _ = listener.await;
        for t in [triggers, retention, people].into_iter().flatten() {
            let _ = t.await;
        }
        tracing::info!(worker = %worker.cfg.id, attempts = stats.attempts, released = stats.released, "worker stopped");
        Ok(stats)
    }

    async fn execute(&self, c: Claimed) {
        let span = tracing::info_span!("run", run_id = %c.lease.run_id, flow_id = %c.flow_id, attempt = c.attempt);
        async {
            let (outcome, records) = match self.attempt(&c).await {
                Ok(o) => o,
                Err(AttemptError::Journal(e)) => {
                    // Nothing can be trusted to have been recorded; the lease will expire
                    // and the run resume from what the store holds.
                    tracing::warn!(error = %e, "the run record could not be saved; leaving the run to be resumed");
                    return;
                }
                Err(AttemptError::Setup(message)) => (
                    RunOutcome::Failed {
                        path: String::new(),
                        error: flowbot_core::runner::StepError {
                            message,
                            retryable: false,
                            code: None,
                            fields: Vec::new(),
                            details: None,
                        },
                    },
                    Vec::new(),
                ),
            };
            self.save_settings_updates().await;
            match self.store.conclude(&c.lease, &records, &outcome).await {
                Ok(status) => {
                    tracing::info!(status = status.as_str(), "attempt finished");
                    let t = self.store.telemetry();
                    let ended = match outcome {
                        RunOutcome::Succeeded => "succeeded",
                        RunOutcome::Failed { .. } => "failed",
                        RunOutcome::RetryLater { .. } => {
                            t.run_retry(&c.flow_id);
                            "retrying"
                        }
                        RunOutcome::WaitUntil { .. } | RunOutcome::WaitForPeople { .. } => {
                            "waiting"
                        }
                    };
                    t.run_finished(&c.flow_id, ended);
                    // Tell the people asked at once (the people loop catches any missed).
                    if status == flowbot_store::RunStatus::Waiting {
                        tell_people(&self.store, &self.apps).await;
                    }
                    if status == flowbot_store::RunStatus::Failed {
                        if let Ok(run) = self.store.run(&c.lease.run_id).await {
                            crate::notify::notify_failure(&self.store, &self.apps, &run).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not conclude the run"),
            }
        }
        .instrument(span)
        .await
    }

    /// Keep what apps changed on their own (a rotated refresh token) in the stored
    /// connection, so the next process signs in with it.
    async fn save_settings_updates(&self) {
        let ids: Vec<String> = self.apps.manifests().map(|m| m.id.clone()).collect();
        for app in ids {
            let Some(connector) = self.apps.get(&app) else {
                continue;
            };
            for (name, key, value) in connector.take_settings_updates() {
                let saved = async {
                    let found = self
                        .store
                        .connections()
                        .await?
                        .into_iter()
                        .find(|c| c.name == name);
                    let Some(info) = found else {
                        return Ok(());
                    };
                    let mut conn = self.store.connection(&info.id).await?;
                    conn.settings.insert(key.clone(), value.clone());
                    self.store
                        .save_connection(&conn.name, &conn.app, &conn.settings, "flowbot")
                        .await
                        .map(|_| ())
                };
                let result: Result<(), StoreError> = saved.await;
                if let Err(e) = result {
                    tracing::warn!(connection = %name, setting = %key, error = %e, "a changed connection setting could not be saved");
                }
            }
        }
    }

    /// One attempt: its outcome and the records still held for the conclusion to write.
    async fn attempt(
        &self,
        c: &Claimed,
    ) -> std::result::Result<(RunOutcome, Vec<StepRecord>), AttemptError> {
        let flow = self
            .flows
            .get(&self.store, &self.apps, &c.flow_id, c.flow_version)
            .await
            .map_err(AttemptError::Setup)?;
        let connections = self
            .store
            .flow_connections(&c.flow_id)
            .await
            .map_err(|e| setup_or_journal(e, "the flow's connections cannot be read"))?;
        // A run's first attempt has no records yet (a re-run is a new run, and every claim,
        // reclaims included, counts an attempt): skip the read.
        let prior = if c.attempt <= 1 {
            Vec::new()
        } else {
            self.store
                .step_records(&c.lease.run_id)
                .await
                .map_err(|e| setup_or_journal(e, "the run's records cannot be read"))?
        };
        let journal = StoreJournal {
            store: self.store.clone(),
            lease: c.lease.clone(),
            held: Mutex::default(),
            apps: &self.apps,
        };
        let runner = Runner {
            flow: &flow,
            apps: &self.apps,
            connections: &connections,
            journal: &journal,
            clock: self.store.clock().as_ref(),
        };
        let files: Arc<dyn flowbot_core::files::FileSource> =
            Arc::new(StoreFiles(self.store.clone()));
        let tables: Arc<dyn flowbot_core::table::TableSource> = Arc::new(
            flowbot_store::RunTables::new(self.store.clone(), &c.flow_id, &c.lease.run_id),
        );
        let run = flowbot_core::table::with_tables(tables, runner.run(&c.trigger, &prior));
        let outcome = flowbot_core::files::with_files(files, run)
            .await
            .map_err(|e| AttemptError::Journal(e.to_string()))?;
        Ok((outcome, journal.take()))
    }
}

/// A run's files, read from the store (checked against their size and checksum).
struct StoreFiles(Store);

#[async_trait]
impl flowbot_core::files::FileSource for StoreFiles {
    async fn read(&self, file: &flowbot_core::files::FileRef) -> Result<Vec<u8>, String> {
        let (info, bytes) = self
            .0
            .read_file(&file.file_id)
            .await
            .map_err(|e| format!("the file `{}` cannot be read: {e}", file.name))?;
        if !file.sha256.is_empty() && info.sha256 != file.sha256 {
            return Err(format!(
                "the file `{}` is not the one the step names",
                file.name
            ));
        }
        Ok(bytes)
    }
}

enum AttemptError {
    /// The store could not be reached: leave the run for its lease to expire.
    Journal(String),
    /// The run cannot start at all: fail it with this message.
    Setup(String),
}

fn setup_or_journal(e: StoreError, what: &str) -> AttemptError {
    if e.is_transient() {
        AttemptError::Journal(e.to_string())
    } else {
        AttemptError::Setup(format!("{what}: {e}"))
    }
}

async fn heartbeat_loop(worker: Arc<Worker>, started_at: i64, held: Held, stop: CancellationToken) {
    // Often enough both to keep leases and to count as alive (seen within 30 s).
    let every = (worker.cfg.lease / 3).min(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = worker.store.worker_seen(&worker.cfg.id, started_at).await {
            tracing::warn!(error = %e, "cannot report this worker as alive");
        }
        // The answer speaks only of the runs held when the heartbeat is sent; a run
        // claimed while it is on its way is missing from it without being lost.
        let asked: HashSet<String> = held.lock().expect("held runs").keys().cloned().collect();
        if asked.is_empty() {
            continue;
        }
        match worker
            .store
            .heartbeat(&worker.cfg.id, worker.cfg.lease)
            .await
        {
            Ok(still) => {
                let still: HashSet<String> = still.into_iter().collect();
                let mut held = held.lock().expect("held runs");
                held.retain(|run_id, (_, handle)| {
                    if still.contains(run_id) || !asked.contains(run_id) {
                        return true;
                    }
                    tracing::warn!(run_id = %run_id, "lease lost (canceled or reclaimed): abandoning the run");
                    handle.abort();
                    false
                });
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Purge old run history now and then; any worker may, deletes are by id and batched.
async fn retention_loop(worker: Arc<Worker>, policy: Retention, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(worker.cfg.retention_every) => {}
            _ = stop.cancelled() => return,
        }
        match worker.store.purge(&policy).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "purged old run history"),
            Err(e) => tracing::warn!(error = %e, "purging run history failed"),
        }
    }
}

/// People's requests: pass the deadlines that are due (once each, whichever worker gets
/// there first, also for deadlines that passed while no worker ran) and tell the people of
/// new or escalated requests.
async fn people_loop(worker: Arc<Worker>, stop: CancellationToken) {
    loop {
        match worker.store.pass_deadlines(50).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "deadlines of people's requests passed"),
            Err(e) => tracing::warn!(error = %e, "passing the deadlines of requests failed"),
        }
        tell_people(&worker.store, &worker.apps).await;
        tokio::select! {
            _ = tokio::time::sleep(worker.cfg.people_every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Tell the people of requests nobody has been told of (each request is claimed once).
async fn tell_people(store: &Store, apps: &Apps) {
    match store.requests_to_notify(20).await {
        Ok(list) => {
            for req in list {
                crate::notify::notify_request(store, apps, &req).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the requests to tell people of"),
    }
}

/// Schedules and polling triggers of enabled flows.
async fn trigger_loop(worker: Arc<Worker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
        let flows = match worker.store.flows().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list flows for their triggers");
                continue;
            }
        };
        for info in flows.into_iter().filter(|f| f.enabled) {
            let flow = match worker
                .flows
                .get(&worker.store, &worker.apps, &info.id, info.current_version)
                .await
            {
                Ok(f) => f,
                Err(_) => continue,
            };
            let result = if flow.trigger.app == "schedule" {
                let enabled_since =
                    jiff::Timestamp::from_millisecond(info.updated_at).unwrap_or_default();
                fire_schedule(&worker, &flow, enabled_since).await
            } else if worker.apps.polls(&flow.trigger) {
                poll(&worker, &flow).await
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!(flow_id = %flow.id, error = %e, "trigger failed");
            }
        }
    }
}

fn option_str<'a>(flow: &'a Flow, key: &str) -> Option<&'a str> {
    flow.trigger.options.get(key).and_then(Value::as_str)
}

/// The event a trigger produces, with the flow's concurrency key rendered against it.
fn new_event(flow: &Flow, source: Source, trigger: Value) -> NewEvent {
    NewEvent {
        files: Vec::new(),
        flow_version: None,
        flow_id: flow.id.clone(),
        source,
        headers: json!({}),
        body: trigger.clone(),
        concurrency_key: concurrency_key(flow, &trigger),
        dedupe: dedupe_key(flow, &trigger),
        trigger,
    }
}

async fn fire_schedule(worker: &Worker, flow: &Flow, enabled_since: jiff::Timestamp) -> Result<()> {
    let missed = match option_str(flow, "missed") {
        Some("catch_up") => MissedSlots::CatchUp,
        _ => MissedSlots::Skip,
    };
    let schedule = Schedule::parse(
        option_str(flow, "cron").unwrap_or("0 9 * * *"),
        option_str(flow, "timezone").unwrap_or("Asia/Tokyo"),
        missed,
    )
    .map_err(|message| EngineError::Schedule {
        flow: flow.id.clone(),
        message,
    })?;
    let now = worker.store.clock().now();
    let last = worker.store.last_schedule_slot(&flow.id).await?;
    match schedule.decide(last, enabled_since, now) {
        Some(SlotDecision::Fire(slot)) => {
            let trigger = json!({ "slot": slot.to_string(), "fired_at": now.to_string() });
            if let Some(outcome) = worker
                .store
                .fire_schedule_slot(slot, new_event(flow, Source::Schedule, trigger))
                .await?
            {
                tracing::info!(flow_id = %flow.id, slot = %slot, ?outcome, "schedule fired");
            }
        }
        Some(SlotDecision::Skip(slot)) => {
            tracing::info!(flow_id = %flow.id, slot = %slot, "missed schedule slot skipped");
            worker.store.skip_schedule_slot(&flow.id, slot).await?;
        }
        None => {}
    }
    Ok(())
}

async fn poll(worker: &Worker, flow: &Flow) -> Result<()> {
    let interval = option_str(flow, "interval")
        .and_then(flowbot_core::model::parse_duration)
        .unwrap_or(Duration::from_secs(300));
    let cursor = worker.store.poll_cursor(&flow.id).await?;
    let now = worker.store.clock().now().as_millisecond();
    if let Some((_, at)) = &cursor {
        if now - at < interval.as_millis() as i64 {
            return Ok(());
        }
    }
    let Some(connector) = worker.apps.get(&flow.trigger.app) else {
        return Ok(());
    };
    let connections = worker.store.flow_connections(&flow.id).await?;
    let connection = flow
        .trigger
        .connection
        .as_ref()
        .and_then(|slot| connections.get(slot));
    let event = flow.trigger.events.first().cloned().unwrap_or_default();
    let expected = cursor.map(|(c, _)| c);
    let polled = connector
        .poll(flowbot_core::connector::PollCall {
            trigger: &event,
            options: &flow.trigger.options,
            connection,
            cursor: expected.as_deref(),
        })
        .await
        .map_err(|e| EngineError::Poll {
            flow: flow.id.clone(),
            message: e.message,
        })?;
    let events: Vec<NewEvent> = polled
        .items
        .into_iter()
        .map(|item| new_event(flow, Source::Poll, item))
        .collect();
    let n = events.len();
    let new_cursor = polled.cursor.or(expected.clone()).unwrap_or_default();
    if worker
        .store
        .commit_poll(&flow.id, expected, new_cursor, events)
        .await?
        && n > 0
    {
        tracing::info!(flow_id = %flow.id, events = n, "poll produced events");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbot_core::runner::StepError;

    fn finished(
        app: &str,
        action: &str,
        output: Option<Value>,
        error: Option<StepError>,
    ) -> StepRecord {
        let at: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        StepRecord {
            path: "s".into(),
            step_id: "s".into(),
            kind: "action".into(),
            generation: 0,
            attempt: 1,
            status: if error.is_some() {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            },
            app: Some(app.into()),
            action: Some(action.into()),
            idempotent: true,
            input: None,
            output,
            error,
            lane: None,
            started_at: at,
            finished_at: Some(at),
        }
    }

    #[tokio::test]
    async fn model_tokens_are_counted_for_actions_that_report_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&flowbot_store::StoreConfig::sqlite(dir.path()))
            .await
            .unwrap();
        let apps = flowbot_connectors::registry();
        let t = store.telemetry();
        let usage = |p: u64, c: u64| json!({"usage": {"prompt_tokens": p, "completion_tokens": c}});
        observe_usage(
            t,
            &apps,
            &finished("ai", "generate", Some(usage(12, 5)), None),
        );
        // An extraction that never fit still spent its tokens.
        let gave_up = StepError {
            message: "did not fit".into(),
            retryable: false,
            code: None,
            fields: vec![],
            details: Some(usage(30, 9)),
        };
        observe_usage(t, &apps, &finished("ai", "extract", None, Some(gave_up)));
        // Another app's output that happens to hold `usage` is not a model's.
        observe_usage(
            t,
            &apps,
            &finished("code", "javascript", Some(usage(1000, 1000)), None),
        );
        let mut started = finished("ai", "generate", Some(usage(1000, 1000)), None);
        started.finished_at = None;
        observe_usage(t, &apps, &started);
        let text = t.render(&store, &[]).await.unwrap();
        assert!(
            text.contains("flowbot_ai_tokens_total{kind=\"prompt\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("flowbot_ai_tokens_total{kind=\"completion\"} 14"),
            "{text}"
        );
    }
}
