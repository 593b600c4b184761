//! The inbox and the run queue: enqueue (event and run in one transaction), claim with a
//! lease, heartbeat, step records fenced on the lease, finish, release, re-runs, cancel.
//!
//! **Invariant:** every write a worker makes to a run it claimed is fenced on the run's
//! `lease_token`: a worker whose lease expired (and whose run another worker reclaimed)
//! changes nothing.
//!
//! **Invariant:** at most one run per flow and concurrency key is `running` (a unique
//! partial index), and a key's runs start in arrival order (`seq`): a run is claimable only
//! when no run of its key is running and no older run of its key is still queued.

use std::time::Duration;

use flowbot_core::runner::StepRecord;
use flowbot_core::RunOutcome;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::{new_id, Backend, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Where an event came from; only manual runs start while a flow's trigger is OFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Poll,
    Schedule,
    Manual,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
            Source::Schedule => "schedule",
            Source::Manual => "manual",
        }
    }
}

/// An event arriving for a flow.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub flow_id: String,
    /// The flow version whose templates rendered the keys: the run is pinned to it, so a
    /// flow updated meanwhile never runs with keys rendered for another version. `None`:
    /// the current version.
    pub flow_version: Option<i64>,
    pub source: Source,
    pub headers: Value,
    pub body: Value,
    /// The obtained value `trigger` the run will see.
    pub trigger: Value,
    /// The rendered concurrency key, or why it could not be rendered (the event is still
    /// stored, and its run fails with that message).
    pub concurrency_key: std::result::Result<Option<String>, String>,
    /// An event whose key was seen within the window is recorded but starts no run.
    pub dedupe: Option<(String, Duration)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EnqueueOutcome {
    Queued {
        event_id: String,
        run_id: String,
    },
    /// The flow's trigger is OFF: recorded, no run.
    Ignored {
        event_id: String,
    },
    /// Seen within the dedupe window: recorded, no run.
    Duplicate {
        event_id: String,
    },
    /// Stored with a run that failed at once (e.g. the concurrency key could not be rendered).
    Failed {
        event_id: String,
        run_id: String,
        reason: String,
    },
}

/// A claimed run: the right to work on it while the lease lasts.
#[derive(Debug, Clone)]
pub struct Lease {
    pub run_id: String,
    pub token: String,
    pub owner: String,
}

#[derive(Debug, Clone)]
pub struct Claimed {
    pub lease: Lease,
    pub flow_id: String,
    pub flow_version: i64,
    pub attempt: i64,
    pub trigger: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub seq: i64,
    pub flow_id: String,
    pub flow_version: i64,
    pub event_id: Option<String>,
    pub status: RunStatus,
    pub attempt: i64,
    pub next_attempt_at: i64,
    pub concurrency_key: Option<String>,
    pub lease_owner: Option<String>,
    /// The worker that concluded the run's latest attempt.
    pub finished_by: Option<String>,
    pub trigger: Value,
    pub error: Option<String>,
    pub error_step: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// An event as the inbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventInfo {
    pub id: String,
    pub flow_id: String,
    pub source: String,
    pub received_at: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub headers: Value,
    pub body: Value,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub flow_id: Option<String>,
    pub status: Option<RunStatus>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
    /// Only runs older than this `seq` (the next page).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

const RUN_COLUMNS: &str = "id, seq, flow_id, flow_version, event_id, status, attempt, next_attempt_at, \
     concurrency_key, lease_owner, trigger_value, error, error_step, created_at, started_at, finished_at, finished_by";

/// Back to the queue, due now, without the failure; `id = $2` or `flow_id = $2` follows.
const REQUEUE_FAILED: &str =
    "UPDATE runs SET status = 'queued', next_attempt_at = $1, error = NULL, \
     error_step = NULL, finished_at = NULL WHERE status = 'failed' AND";

fn run_row(r: &AnyRow) -> Result<RunInfo> {
    let status: String = r.try_get("status")?;
    Ok(RunInfo {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        flow_id: r.try_get("flow_id")?,
        flow_version: r.try_get("flow_version")?,
        event_id: r.try_get("event_id")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status `{status}`")))?,
        attempt: r.try_get("attempt")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        concurrency_key: r.try_get("concurrency_key")?,
        lease_owner: r.try_get("lease_owner")?,
        finished_by: r.try_get("finished_by")?,
        trigger: json_col(r, "trigger_value")?,
        error: r.try_get("error")?,
        error_step: r.try_get("error_step")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn json_col(r: &AnyRow, col: &str) -> Result<Value> {
    let text: String = r.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// Tell the workers of other processes, when the caller's transaction commits, that runs
/// were queued (PostgreSQL `NOTIFY`; one process's workers are woken by
/// [`Store::wake_workers`] after the commit). Every write that queues a run calls it.
pub(crate) async fn announce_queued(conn: &mut AnyConnection) -> Result<()> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(crate::RUNS_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Insert an event and (unless it is ignored) its run, inside the caller's transaction.
pub(crate) async fn insert_event(
    conn: &mut AnyConnection,
    now: i64,
    ev: &NewEvent,
) -> Result<EnqueueOutcome> {
    let flow = sqlx::query("SELECT current_version, enabled FROM flows WHERE id = $1")
        .bind(ev.flow_id.clone())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::FlowNotFound(ev.flow_id.clone()))?;
    let version: i64 = match ev.flow_version {
        Some(v) => v,
        None => flow.try_get("current_version")?,
    };
    let enabled = flow.try_get::<i64, _>("enabled")? != 0;
    let event_id = new_id();

    let mut outcome = if !enabled && ev.source != Source::Manual {
        "ignored"
    } else {
        "queued"
    };
    let dedupe_key = ev.dedupe.as_ref().map(|(k, _)| k.clone());
    if let (Some((key, window)), "queued") = (&ev.dedupe, outcome) {
        let since = now - window.as_millis() as i64;
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM events WHERE flow_id = $1 AND dedupe_key = $2 AND received_at >= $3 \
             AND outcome IN ('queued', 'failed') LIMIT 1",
        )
        .bind(ev.flow_id.clone())
        .bind(key.clone())
        .bind(since)
        .fetch_optional(&mut *conn)
        .await?;
        if seen.is_some() {
            outcome = "duplicate";
        }
    }
    let key_error = ev.concurrency_key.as_ref().err().cloned();
    if outcome == "queued" && key_error.is_some() {
        outcome = "failed";
    }
    sqlx::query(
        "INSERT INTO events (id, flow_id, source, received_at, headers, body, outcome, dedupe_key, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event_id.clone())
    .bind(ev.flow_id.clone())
    .bind(ev.source.as_str())
    .bind(now)
    .bind(ev.headers.to_string())
    .bind(ev.body.to_string())
    .bind(outcome)
    .bind(dedupe_key)
    .bind(key_error.clone())
    .execute(&mut *conn)
    .await?;

    match outcome {
        "ignored" => return Ok(EnqueueOutcome::Ignored { event_id }),
        "duplicate" => return Ok(EnqueueOutcome::Duplicate { event_id }),
        _ => {}
    }
    let run_id = new_id();
    let (status, key, error, finished) = match &ev.concurrency_key {
        Ok(key) => ("queued", key.clone(), None, None),
        Err(e) => ("failed", None, Some(e.clone()), Some(now)),
    };
    sqlx::query(
        "INSERT INTO runs (id, flow_id, flow_version, event_id, status, attempt, next_attempt_at, \
         concurrency_key, trigger_value, error, created_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $6, $10)",
    )
    .bind(run_id.clone())
    .bind(ev.flow_id.clone())
    .bind(version)
    .bind(event_id.clone())
    .bind(status)
    .bind(now)
    .bind(key)
    .bind(ev.trigger.to_string())
    .bind(error.clone())
    .bind(finished)
    .execute(&mut *conn)
    .await?;
    if error.is_none() {
        announce_queued(conn).await?;
    }
    Ok(match error {
        None => EnqueueOutcome::Queued { event_id, run_id },
        Some(reason) => EnqueueOutcome::Failed {
            event_id,
            run_id,
            reason,
        },
    })
}

impl Store {
    /// Store an event and enqueue its run in one transaction; returns once committed.
    pub async fn enqueue(&self, ev: NewEvent) -> Result<EnqueueOutcome> {
        let now = self.now_ms();
        let outcome = self
            .inner
            .writer
            .write(move |conn| Box::pin(async move { insert_event(conn, now, &ev).await }))
            .await?;
        if matches!(outcome, EnqueueOutcome::Queued { .. }) {
            self.wake_workers();
        }
        Ok(outcome)
    }

    /// Record an event that could not be accepted (e.g. malformed JSON), for inspection.
    pub async fn record_rejected_event(
        &self,
        flow_id: &str,
        headers: Value,
        body: Value,
        reason: &str,
    ) -> Result<String> {
        self.record_event_only(flow_id, headers, body, "invalid", reason)
            .await
    }

    /// Record an event that starts no run because it is not one the flow listens to.
    pub async fn record_ignored_event(
        &self,
        flow_id: &str,
        headers: Value,
        body: Value,
        reason: &str,
    ) -> Result<String> {
        self.record_event_only(flow_id, headers, body, "ignored", reason)
            .await
    }

    async fn record_event_only(
        &self,
        flow_id: &str,
        headers: Value,
        body: Value,
        outcome: &'static str,
        reason: &str,
    ) -> Result<String> {
        let (flow_id, reason) = (flow_id.to_string(), reason.to_string());
        let now = self.now_ms();
        let id = new_id();
        let event_id = id.clone();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO events (id, flow_id, source, received_at, headers, body, outcome, detail) \
                         VALUES ($1, $2, 'webhook', $3, $4, $5, $6, $7)",
                    )
                    .bind(event_id)
                    .bind(flow_id)
                    .bind(now)
                    .bind(headers.to_string())
                    .bind(body.to_string())
                    .bind(outcome)
                    .bind(reason)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(id)
    }

    /// Claim up to `limit` due runs for `owner`, leased for `lease`. Expired leases are
    /// reclaimed here too: their runs resume at their last unfinished step.
    pub async fn claim(&self, owner: &str, lease: Duration, limit: i64) -> Result<Vec<Claimed>> {
        let now = self.now_ms();
        let expires = now + lease.as_millis() as i64;
        let token = new_id();
        let owner = owner.to_string();
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // One writer per SQLite file: claims are already serialised.
            Backend::Sqlite => "",
        };
        // Two statements, each simple enough for an index walk that stops at the limit:
        // runs whose lease expired (few: at most the running ones), then due queued runs
        // oldest first. A run is claimable only when no run of its key is running and no
        // older run of its key is still queued (`status IN` lets the partial index on the
        // key serve that check).
        let claim = |which: &str| {
            format!(
                "UPDATE runs SET status = 'running', lease_owner = $1, lease_token = $2, \
                 lease_expires_at = $3, attempt = attempt + 1, started_at = COALESCE(started_at, $4) \
                 WHERE seq IN ( \
                   SELECT r.seq FROM runs r WHERE {which} \
                     AND (r.concurrency_key IS NULL OR NOT EXISTS ( \
                       SELECT 1 FROM runs o WHERE o.flow_id = r.flow_id \
                         AND o.concurrency_key = r.concurrency_key \
                         AND o.status IN ('queued', 'running') AND o.seq <> r.seq \
                         AND (o.status = 'running' OR (o.status = 'queued' AND o.seq < r.seq)))) \
                   ORDER BY r.seq LIMIT $5 {lock}) \
                 RETURNING id, flow_id, flow_version, attempt, trigger_value"
            )
        };
        let sqls = [
            claim("r.status = 'running' AND r.lease_expires_at < $4"),
            // `+` keeps the planner on (status, seq), in claim order, instead of sorting
            // every due run by seq on each claim.
            claim("r.status = 'queued' AND +r.next_attempt_at <= $4"),
        ];
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let mut rows = Vec::new();
                    for sql in &sqls {
                        let left = limit - rows.len() as i64;
                        if left <= 0 {
                            break;
                        }
                        rows.extend(
                            sqlx::query(sql)
                                .bind(owner.clone())
                                .bind(token.clone())
                                .bind(expires)
                                .bind(now)
                                .bind(left)
                                .fetch_all(&mut *conn)
                                .await?,
                        );
                    }
                    rows.iter()
                        .map(|r| {
                            Ok(Claimed {
                                lease: Lease {
                                    run_id: r.try_get("id")?,
                                    token: token.clone(),
                                    owner: owner.clone(),
                                },
                                flow_id: r.try_get("flow_id")?,
                                flow_version: r.try_get("flow_version")?,
                                attempt: r.try_get("attempt")?,
                                trigger: json_col(r, "trigger_value")?,
                            })
                        })
                        .collect()
                })
            })
            .await
    }

    /// Extend every lease `owner` holds; returns the ids of the runs it still holds (a run
    /// missing from the answer was canceled or reclaimed: stop working on it).
    pub async fn heartbeat(&self, owner: &str, lease: Duration) -> Result<Vec<String>> {
        let now = self.now_ms();
        let expires = now + lease.as_millis() as i64;
        let owner = owner.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "UPDATE runs SET lease_expires_at = $1 \
                         WHERE lease_owner = $2 AND status = 'running' RETURNING id",
                    )
                    .bind(expires)
                    .bind(owner)
                    .fetch_all(&mut *conn)
                    .await?;
                    Ok(ids)
                })
            })
            .await
    }

    /// Save a step record, fenced on the lease. Returns once it is durable, so a *started*
    /// record is on disk before the call it announces.
    pub async fn record_step(&self, lease: &Lease, rec: &StepRecord) -> Result<()> {
        let lease = lease.clone();
        let now = self.now_ms();
        let record = serde_json::to_string(rec).expect("a step record serialises");
        let (generation, path, attempt) = (
            i64::from(rec.generation),
            rec.path.clone(),
            i64::from(rec.attempt),
        );
        let status = serde_json::to_value(rec.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    fence(conn, &lease).await?;
                    sqlx::query(
                        "INSERT INTO step_records (run_id, generation, path, attempt, status, record, written_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (run_id, generation, path, attempt) \
                         DO UPDATE SET status = excluded.status, record = excluded.record, written_at = excluded.written_at",
                    )
                    .bind(lease.run_id.clone())
                    .bind(generation)
                    .bind(path)
                    .bind(attempt)
                    .bind(status)
                    .bind(record)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Conclude an attempt: succeeded, failed, or back to the queue for a retry or a wait.
    pub async fn finish(&self, lease: &Lease, outcome: &RunOutcome) -> Result<RunStatus> {
        let lease = lease.clone();
        let now = self.now_ms();
        let (status, next_at, error, error_step, finished) = match outcome {
            RunOutcome::Succeeded => (RunStatus::Succeeded, None, None, None, Some(now)),
            RunOutcome::Failed { path, error } => (
                RunStatus::Failed,
                None,
                Some(error.message.clone()),
                Some(path.clone()),
                Some(now),
            ),
            RunOutcome::RetryLater {
                path, error, delay, ..
            } => (
                RunStatus::Queued,
                Some(now + delay.as_millis() as i64),
                Some(error.message.clone()),
                Some(path.clone()),
                None,
            ),
            RunOutcome::WaitUntil { until, .. } => (
                RunStatus::Queued,
                Some(until.as_millisecond()),
                None,
                None,
                None,
            ),
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE runs SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                         error = $3, error_step = $4, finished_at = $5, finished_by = lease_owner, \
                         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                         WHERE id = $6 AND lease_token = $7 AND status = 'running'",
                    )
                    .bind(status.as_str())
                    .bind(next_at)
                    .bind(error)
                    .bind(error_step)
                    .bind(finished)
                    .bind(lease.run_id.clone())
                    .bind(lease.token.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(lease_lost(&lease));
                    }
                    Ok(status)
                })
            })
            .await
    }

    /// Give a claimed run back without concluding it (graceful shutdown): it is due again
    /// at once and resumes at its last unfinished step.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE runs SET status = 'queued', next_attempt_at = $1, \
                         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                         WHERE id = $2 AND lease_token = $3 AND status = 'running'",
                    )
                    .bind(now)
                    .bind(lease.run_id.clone())
                    .bind(lease.token.clone())
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn run(&self, id: &str) -> Result<RunInfo> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        run_row(&row)
    }

    /// Runs, newest first.
    pub async fn runs(&self, f: &RunFilter) -> Result<Vec<RunInfo>> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
        let mut n = 0;
        let mut next = |col: &str| {
            n += 1;
            format!(" AND {col} ${n}")
        };
        if f.flow_id.is_some() {
            sql += &next("flow_id =");
        }
        if f.status.is_some() {
            sql += &next("status =");
        }
        if f.since.is_some() {
            sql += &next("created_at >=");
        }
        if f.until.is_some() {
            sql += &next("created_at <");
        }
        if f.before_seq.is_some() {
            sql += &next("seq <");
        }
        n += 1;
        sql += &format!(" ORDER BY seq DESC LIMIT ${n}");
        let mut q = sqlx::query(&sql);
        if let Some(v) = &f.flow_id {
            q = q.bind(v.clone());
        }
        if let Some(v) = f.status {
            q = q.bind(v.as_str());
        }
        if let Some(v) = f.since {
            q = q.bind(v);
        }
        if let Some(v) = f.until {
            q = q.bind(v);
        }
        if let Some(v) = f.before_seq {
            q = q.bind(v);
        }
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(1000) };
        q = q.bind(limit);
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(run_row)
            .collect()
    }

    /// Count runs by status, optionally for one flow.
    pub async fn count_runs(&self, flow_id: Option<&str>, status: RunStatus) -> Result<i64> {
        let count: i64 = match flow_id {
            Some(f) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE flow_id = $1 AND status = $2")
                    .bind(f.to_string())
                    .bind(status.as_str())
                    .fetch_one(self.pool())
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = $1")
                    .bind(status.as_str())
                    .fetch_one(self.pool())
                    .await?
            }
        };
        Ok(count)
    }

    /// Every step record of a run, in the order the executions started.
    pub async fn step_records(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT record FROM step_records WHERE run_id = $1 ORDER BY id")
                .bind(run_id.to_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r)
                    .map_err(|e| StoreError::Corrupt(format!("step record: {e}")))
            })
            .collect()
    }

    /// Re-run a failed run from its failed step, on the flow version it was enqueued with.
    pub async fn rerun_from_failed(&self, run_id: &str) -> Result<()> {
        if self
            .requeue_runs(format!("{REQUEUE_FAILED} id = $2"), run_id)
            .await?
            == 0
        {
            return Err(StoreError::Conflict(format!(
                "run {run_id} is not a failed run, so it cannot be re-run from its failed step"
            )));
        }
        Ok(())
    }

    /// Start a new run with the same trigger; on the flow's current version, or the one
    /// the original run used. Returns the new run's id.
    pub async fn rerun_from_start(&self, run_id: &str, current_version: bool) -> Result<String> {
        let old = self.run(run_id).await?;
        let now = self.now_ms();
        let new_run = new_id();
        let id = new_run.clone();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let version: i64 = if current_version {
                        sqlx::query_scalar("SELECT current_version FROM flows WHERE id = $1")
                            .bind(old.flow_id.clone())
                            .fetch_optional(&mut *conn)
                            .await?
                            .ok_or_else(|| StoreError::FlowNotFound(old.flow_id.clone()))?
                    } else {
                        old.flow_version
                    };
                    sqlx::query(
                        "INSERT INTO runs (id, flow_id, flow_version, event_id, status, attempt, next_attempt_at, \
                         concurrency_key, trigger_value, created_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $5)",
                    )
                    .bind(id)
                    .bind(old.flow_id)
                    .bind(version)
                    .bind(old.event_id)
                    .bind(now)
                    .bind(old.concurrency_key)
                    .bind(old.trigger.to_string())
                    .execute(&mut *conn)
                    .await?;
                    announce_queued(conn).await
                })
            })
            .await?;
        self.wake_workers();
        Ok(new_run)
    }

    /// Re-run every failed run of a flow from its failed step. Returns how many.
    pub async fn rerun_failed(&self, flow_id: &str) -> Result<u64> {
        self.requeue_runs(format!("{REQUEUE_FAILED} flow_id = $2"), flow_id)
            .await
    }

    /// Cancel a queued or running run. A worker running it notices at its next heartbeat.
    pub async fn cancel(&self, run_id: &str) -> Result<()> {
        let sql = "UPDATE runs SET status = 'canceled', finished_at = $1, lease_owner = NULL, \
                   lease_token = NULL, lease_expires_at = NULL \
                   WHERE id = $2 AND status IN ('queued', 'running')";
        if self.update_runs(sql.to_string(), run_id).await? == 0 {
            return Err(StoreError::Conflict(format!(
                "run {run_id} has already finished"
            )));
        }
        Ok(())
    }

    /// The newest events of a flow (or of every flow), newest first.
    pub async fn events(&self, flow_id: Option<&str>, limit: i64) -> Result<Vec<EventInfo>> {
        let limit = limit.clamp(1, 1000);
        let rows = match flow_id {
            Some(f) => {
                sqlx::query("SELECT * FROM events WHERE flow_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2")
                    .bind(f.to_string())
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM events ORDER BY received_at DESC, id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(EventInfo {
                    id: r.try_get("id")?,
                    flow_id: r.try_get("flow_id")?,
                    source: r.try_get("source")?,
                    received_at: r.try_get("received_at")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    headers: json_col(r, "headers")?,
                    body: json_col(r, "body")?,
                })
            })
            .collect()
    }

    /// Cancel every queued run of a flow (a flow gone wrong). Returns how many.
    pub async fn cancel_queued(&self, flow_id: &str) -> Result<u64> {
        let sql = "UPDATE runs SET status = 'canceled', finished_at = $1 WHERE flow_id = $2 AND status = 'queued'";
        self.update_runs(sql.to_string(), flow_id).await
    }

    /// One `UPDATE runs` whose `$1` is now and `$2` the run or flow it is about; the number
    /// of runs it changed.
    async fn update_runs(&self, sql: String, key: &str) -> Result<u64> {
        self.change_runs(sql, key, false).await
    }

    /// As [`Store::update_runs`], for an update that puts runs back in the queue.
    async fn requeue_runs(&self, sql: String, key: &str) -> Result<u64> {
        let n = self.change_runs(sql, key, true).await?;
        if n > 0 {
            self.wake_workers();
        }
        Ok(n)
    }

    /// Runs a worker held when its process died, taken back at once instead of after their
    /// leases expire: on SQLite every run left `running` (only one process can hold the
    /// store, so none is held by anyone now; call before this process starts a worker); on
    /// PostgreSQL the runs of `owner`, a worker restarting under the id it had. Their leases
    /// end now, so the next claim resumes them from their records.
    pub async fn reclaim_orphaned_runs(&self, owner: &str) -> Result<u64> {
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "UPDATE runs SET lease_expires_at = 0 WHERE status = 'running' AND $1 = $1 AND $2 = $2"
            }
            crate::Backend::Postgres => {
                "UPDATE runs SET lease_expires_at = 0 WHERE status = 'running' AND lease_owner = $2 AND $1 = $1"
            }
        };
        let n = self.requeue_runs(sql.to_string(), owner).await?;
        if n > 0 {
            tracing::info!(runs = n, "took back runs a stopped process held");
        }
        Ok(n)
    }

    async fn change_runs(&self, sql: String, key: &str, queues: bool) -> Result<u64> {
        let key = key.to_string();
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(&sql)
                        .bind(now)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if queues && n > 0 {
                        announce_queued(conn).await?;
                    }
                    Ok(n)
                })
            })
            .await
    }

    /// How many runs are due now, and since when the oldest has waited (ms).
    pub async fn queue_depth(&self) -> Result<(i64, Option<i64>)> {
        let now = self.now_ms();
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM runs \
             WHERE status = 'queued' AND next_attempt_at <= $1",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok((n, oldest.map(|t| now - t)))
    }
}

/// Check, and in PostgreSQL lock, that the lease still holds.
async fn fence(conn: &mut AnyConnection, lease: &Lease) -> Result<()> {
    let n = sqlx::query(
        "UPDATE runs SET lease_expires_at = lease_expires_at \
         WHERE id = $1 AND lease_token = $2 AND status = 'running'",
    )
    .bind(lease.run_id.clone())
    .bind(lease.token.clone())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(lease_lost(lease));
    }
    Ok(())
}

fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost(lease.run_id.clone())
}
