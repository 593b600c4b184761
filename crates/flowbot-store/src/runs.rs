//! Runs as they are read and changed outside a worker's lease: the history and its
//! filters, step records, re-runs, cancels, orphaned runs taken back, the queue's depth.

use flowbot_core::runner::StepRecord;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::audit::{audit, Actor};
use crate::inbox::*;
use crate::{new_id, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Waiting for people (an approval or a task): no worker holds it.
    Waiting,
    Succeeded,
    Failed,
    Canceled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Only runs whose trigger values contain this text (an email, an order number).
    pub contains: Option<String>,
    /// Only runs of flows in these projects (None: every project).
    pub projects: Option<Vec<String>>,
    pub limit: i64,
}

pub(crate) const RUN_COLUMNS: &str = "id, seq, flow_id, flow_version, event_id, status, attempt, next_attempt_at, \
     concurrency_key, lease_owner, trigger_value, error, error_step, created_at, started_at, finished_at, finished_by";

/// Back to the queue, due now, without the failure; `id = $2` or `flow_id = $2` follows.
pub(crate) const REQUEUE_FAILED: &str =
    "UPDATE runs SET status = 'queued', next_attempt_at = $1, error = NULL, \
     error_step = NULL, finished_at = NULL WHERE status = 'failed' AND";

pub(crate) fn run_row(r: &AnyRow) -> Result<RunInfo> {
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

pub(crate) fn json_col(r: &AnyRow, col: &str) -> Result<Value> {
    let text: String = r.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

impl Store {
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
        if f.contains.is_some() {
            // Case-blind alike on SQLite and PostgreSQL.
            n += 1;
            sql += &format!(" AND lower(trigger_value) LIKE lower(${n}) ESCAPE '\\'");
        }
        if let Some(ps) = &f.projects {
            if ps.is_empty() {
                sql += " AND 1 = 0";
            } else {
                let marks: Vec<String> = ps
                    .iter()
                    .map(|_| {
                        n += 1;
                        format!("${n}")
                    })
                    .collect();
                sql += &format!(
                    " AND flow_id IN (SELECT id FROM flows WHERE project_id IN ({}))",
                    marks.join(", ")
                );
            }
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
        if let Some(text) = &f.contains {
            // The text as it is: `%` and `_` match themselves.
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.bind(format!("%{escaped}%"));
        }
        for p in f.projects.iter().flatten() {
            q = q.bind(p.clone());
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
    pub async fn rerun_from_failed(&self, run_id: &str, actor: impl Into<Actor>) -> Result<()> {
        let sql = format!("{REQUEUE_FAILED} id = $2");
        let record = Some((actor.into(), "run.rerun_failed_step"));
        if self.change_runs_audited(sql, run_id, true, record).await? == 0 {
            return Err(StoreError::Conflict(format!(
                "run {run_id} is not a failed run, so it cannot be re-run from its failed step"
            )));
        }
        Ok(())
    }

    /// Start a new run with the same trigger; on the flow's current version, or the one
    /// the original run used. Returns the new run's id.
    pub async fn rerun_from_start(
        &self,
        run_id: &str,
        current_version: bool,
        actor: impl Into<Actor>,
    ) -> Result<String> {
        let actor: Actor = actor.into();
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
                    .bind(id.clone())
                    .bind(old.flow_id)
                    .bind(version)
                    .bind(old.event_id)
                    .bind(now)
                    .bind(old.concurrency_key)
                    .bind(old.trigger.to_string())
                    .execute(&mut *conn)
                    .await?;
                    audit(conn, now, &actor, "run.rerun_from_start", &old.id, json!({ "new_run": id, "version": version })).await?;
                    announce_queued(conn).await
                })
            })
            .await?;
        self.wake_workers();
        Ok(new_run)
    }

    /// Re-run every failed run of a flow from its failed step. Returns how many.
    pub async fn rerun_failed(&self, flow_id: &str, actor: impl Into<Actor>) -> Result<u64> {
        let record = Some((actor.into(), "flow.rerun_failed"));
        self.change_runs_audited(
            format!("{REQUEUE_FAILED} flow_id = $2"),
            flow_id,
            true,
            record,
        )
        .await
    }

    /// Cancel a queued, running or waiting run (a waiting run's open requests close with
    /// it). A worker running it notices at its next heartbeat.
    pub async fn cancel(&self, run_id: &str, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        let id = run_id.to_string();
        let now = self.now_ms();
        let n = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE runs SET status = 'canceled', finished_at = $1, lease_owner = NULL, \
                         lease_token = NULL, lease_expires_at = NULL \
                         WHERE id = $2 AND status IN ('queued', 'running', 'waiting')",
                    )
                    .bind(now)
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n > 0 {
                        crate::people::cancel_requests_of(conn, &id, now).await?;
                        audit(conn, now, &actor, "run.cancel", &id, json!({ "runs": n })).await?;
                    }
                    Ok(n)
                })
            })
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "run {run_id} has already finished"
            )));
        }
        Ok(())
    }

    /// Cancel every queued run of a flow (a flow gone wrong). Returns how many.
    pub async fn cancel_queued(&self, flow_id: &str) -> Result<u64> {
        let sql = "UPDATE runs SET status = 'canceled', finished_at = $1 WHERE flow_id = $2 AND status = 'queued'";
        self.update_runs(sql.to_string(), flow_id).await
    }

    /// One `UPDATE runs` whose `$1` is now and `$2` the run or flow it is about; the number
    /// of runs it changed.
    pub(crate) async fn update_runs(&self, sql: String, key: &str) -> Result<u64> {
        self.change_runs(sql, key, false).await
    }

    /// As [`Store::update_runs`], for an update that puts runs back in the queue.
    pub(crate) async fn requeue_runs(&self, sql: String, key: &str) -> Result<u64> {
        self.change_runs(sql, key, true).await
    }

    /// Runs a worker held when its process died, taken back at once instead of after their
    /// leases expire: on SQLite every run left `running` (only one process can hold the
    /// store, so none is held by anyone now; call before this process starts a worker); on
    /// PostgreSQL the runs of `owner`, a worker restarting under the id it had. Their leases
    /// end now, so the next claim resumes them from their records.
    pub async fn reclaim_orphaned_runs(&self, owner: &str) -> Result<u64> {
        // The lease ended just now ($1 - 1, so a claim at $1 takes it); whose runs ($2)
        // depends on the backend.
        let (sql, whose) = match self.backend() {
            crate::Backend::Sqlite => (
                "UPDATE runs SET lease_expires_at = $1 - 1 WHERE status = 'running' AND lease_owner LIKE $2",
                "%",
            ),
            crate::Backend::Postgres => (
                "UPDATE runs SET lease_expires_at = $1 - 1 WHERE status = 'running' AND lease_owner = $2",
                owner,
            ),
        };
        let n = self.requeue_runs(sql.to_string(), whose).await?;
        if n > 0 {
            // The next claim looks for expired leases whenever it last did.
            self.inner
                .expired_checked_at
                .store(i64::MIN / 2, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(runs = n, "took back runs a stopped process held");
        }
        Ok(n)
    }

    pub(crate) async fn change_runs(&self, sql: String, key: &str, queues: bool) -> Result<u64> {
        self.change_runs_audited(sql, key, queues, None).await
    }

    /// As [`Store::change_runs`], recording `(who, action)` in the audit log with the
    /// change when it changed any run.
    async fn change_runs_audited(
        &self,
        sql: String,
        key: &str,
        queues: bool,
        record: Option<(Actor, &'static str)>,
    ) -> Result<u64> {
        let key = key.to_string();
        let now = self.now_ms();
        let n = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(&sql)
                        .bind(now)
                        .bind(key.clone())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if queues && n > 0 {
                        announce_queued(conn).await?;
                    }
                    if let (Some((actor, action)), true) = (record, n > 0) {
                        audit(conn, now, &actor, action, &key, json!({ "runs": n })).await?;
                    }
                    Ok(n)
                })
            })
            .await?;
        if queues && n > 0 {
            self.wake_workers();
        }
        Ok(n)
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
