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

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowbot_core::runner::StepRecord;
use flowbot_core::RunOutcome;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::runs::*;
use crate::{new_id, Backend, Result, Store, StoreError};

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

impl Store {
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
                         AND o.status IN ('queued', 'running', 'waiting') AND o.seq <> r.seq \
                         AND (o.status <> 'queued' OR o.seq < r.seq))) \
                   ORDER BY r.seq LIMIT $5 {lock}) \
                 RETURNING id, flow_id, flow_version, attempt, trigger_value"
            )
        };
        // Expired leases are rare (a worker died or stalled) and a lease lasts tens of
        // seconds: look for them at most once a second, not on every claim.
        let last = self.inner.expired_checked_at.load(Ordering::Relaxed);
        let look_for_expired = now - last >= 1000
            && self
                .inner
                .expired_checked_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let mut sqls = Vec::with_capacity(2);
        if look_for_expired {
            sqls.push(claim("r.status = 'running' AND r.lease_expires_at < $4"));
        }
        // `+` keeps the planner on (status, seq), in claim order, instead of sorting
        // every due run by seq on each claim.
        sqls.push(claim("r.status = 'queued' AND +r.next_attempt_at <= $4"));
        self.inner
            .writer
            // Bare: a claim fails only by a database error, which fails its batch anyway.
            .write_bare(move |conn| {
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
        self.record_steps(lease, std::slice::from_ref(rec)).await
    }

    /// Save step records, fenced on the lease; durable on return. Records of other runs
    /// waiting at the same time share the statement: the first of them submits one write
    /// that takes every record waiting when the writer runs it, and answers the others
    /// after the commit (each run's lease is checked on its own).
    pub async fn record_steps(&self, lease: &Lease, recs: &[StepRecord]) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut pending = self.inner.pending_records.lock().expect("pending records");
            pending.push(PendingRecords {
                lease: lease.clone(),
                rows: StepRows::new(recs, self.now_ms()),
                done,
            });
            pending.len() == 1
        };
        if lead {
            // A task of its own: the answers go out even if this caller stops waiting.
            let store = self.clone();
            tokio::spawn(async move { store.write_pending_records().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Commit(
                "the step records were not written".into(),
            ))
        })
    }

    async fn write_pending_records(&self) {
        let store = self.clone();
        let backend = self.backend();
        // The answers, kept out of the write so they are given whatever happens to it.
        let answers: Arc<Mutex<Vec<(Lease, Answer)>>> = Arc::default();
        let taken = answers.clone();
        let written = self
            .inner
            .writer
            // Bare: a lost lease is found by the statement that would write.
            .write_bare(move |conn| {
                Box::pin(async move {
                    let batch = std::mem::take(
                        &mut *store.inner.pending_records.lock().expect("pending records"),
                    );
                    let mut work = Vec::with_capacity(batch.len());
                    {
                        let mut answers = taken.lock().expect("record answers");
                        for p in batch {
                            answers.push((p.lease.clone(), p.done));
                            work.push((p.lease, p.rows));
                        }
                    }
                    insert_fenced_runs(conn, &work, backend).await
                })
            })
            .await;
        let answers = std::mem::take(&mut *answers.lock().expect("record answers"));
        if answers.is_empty() {
            // The write never ran (the store is closing): answer whoever is waiting.
            let left =
                std::mem::take(&mut *self.inner.pending_records.lock().expect("pending records"));
            for p in left {
                let _ = p.done.send(Err(StoreError::Closed));
            }
            return;
        }
        for (lease, done) in answers {
            let _ = done.send(match &written {
                Ok(held) if held.contains(&lease.run_id) => Ok(()),
                Ok(_) => Err(lease_lost(&lease)),
                Err(e) => Err(StoreError::Commit(e.to_string())),
            });
        }
    }

    /// Conclude an attempt: succeeded, failed, or back to the queue for a retry or a wait.
    pub async fn finish(&self, lease: &Lease, outcome: &RunOutcome) -> Result<RunStatus> {
        self.conclude(lease, &[], outcome).await
    }

    /// Write the attempt's last step records and conclude it, in one write: both happen or
    /// neither (a lost lease changes nothing).
    pub async fn conclude(
        &self,
        lease: &Lease,
        recs: &[StepRecord],
        outcome: &RunOutcome,
    ) -> Result<RunStatus> {
        let lease = lease.clone();
        let now = self.now_ms();
        let rows = StepRows::new(recs, now);
        let backend = self.backend();
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
                Some(now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))),
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
            RunOutcome::WaitForPeople { path, request } => {
                return self
                    .conclude_waiting(lease, rows, path.clone(), (**request).clone())
                    .await
            }
        };
        self.inner
            .writer
            // Bare: the update is the fence and comes first; a lost lease writes nothing.
            .write_bare(move |conn| {
                Box::pin(async move {
                    const UPDATE: &str = "UPDATE runs SET status = $3, \
                         next_attempt_at = COALESCE($4, next_attempt_at), error = $5, \
                         error_step = $6, finished_at = $7, finished_by = lease_owner, \
                         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                         WHERE id = $1 AND lease_token = $2 AND status = 'running'";
                    // PostgreSQL: the conclusion and the last records in one statement (one
                    // round trip); the records are written only if the update found the run.
                    let fused = backend == Backend::Postgres
                        && !rows.rows.is_empty()
                        && rows.rows.len() <= STEP_ROWS_PER_STATEMENT;
                    let sql = if fused {
                        format!(
                            "WITH f AS ({UPDATE} RETURNING id) \
                             INSERT INTO step_records ({STEP_COLUMNS}) \
                             SELECT v.* FROM (VALUES {}) AS v({STEP_COLUMNS}) \
                             WHERE EXISTS (SELECT 1 FROM f) {STEP_UPSERT}",
                            StepRows::placeholders(rows.rows.len(), 8)
                        )
                    } else {
                        UPDATE.to_string()
                    };
                    let q = sqlx::query(&sql)
                        .bind(lease.run_id.as_str())
                        .bind(lease.token.as_str())
                        .bind(status.as_str())
                        .bind(next_at)
                        .bind(error)
                        .bind(error_step)
                        .bind(finished);
                    let q = if fused {
                        rows.bind_rows(q, &lease.run_id, &rows.rows)
                    } else {
                        q
                    };
                    if q.execute(&mut *conn).await?.rows_affected() == 0 {
                        return Err(lease_lost(&lease));
                    }
                    if !fused {
                        rows.insert(conn, &lease.run_id).await?;
                    }
                    Ok(status)
                })
            })
            .await
    }

    /// Conclude an attempt that waits for people: the run becomes `waiting` and its request
    /// is opened in the same write. When nobody can be asked the run fails instead, with
    /// the step's record saying why.
    async fn conclude_waiting(
        &self,
        lease: Lease,
        mut rows: StepRows,
        path: String,
        request: flowbot_core::runner::PeopleRequest,
    ) -> Result<RunStatus> {
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let held: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM runs WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                    )
                    .bind(lease.run_id.as_str())
                    .bind(lease.token.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                    if held.is_none() {
                        return Err(lease_lost(&lease));
                    }
                    rows.insert(conn, &lease.run_id).await?;
                    let opened =
                        crate::people::open_request(conn, &lease.run_id, &path, &request, now)
                            .await?;
                    let (status, error) = match opened {
                        Ok(()) => (RunStatus::Waiting, None),
                        Err(why) => {
                            rows.fail_step(&path, &why, now);
                            rows.insert(conn, &lease.run_id).await?;
                            (RunStatus::Failed, Some(why))
                        }
                    };
                    let finished = (status == RunStatus::Failed).then_some(now);
                    sqlx::query(
                        "UPDATE runs SET status = $3, error = $4, error_step = $5, finished_at = $6, \
                         finished_by = lease_owner, lease_owner = NULL, lease_token = NULL, \
                         lease_expires_at = NULL WHERE id = $1 AND lease_token = $2",
                    )
                    .bind(lease.run_id.as_str())
                    .bind(lease.token.as_str())
                    .bind(status.as_str())
                    .bind(error.clone())
                    .bind(error.map(|_| path.clone()))
                    .bind(finished)
                    .execute(&mut *conn)
                    .await?;
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
}

/// Step records ready to be written: one row each, a later record of the same execution
/// replacing an earlier one (one statement may not touch a row twice on PostgreSQL).
struct StepRows {
    rows: Vec<(i64, String, i64, String, String)>,
    now: i64,
}

const STEP_COLUMNS: &str = "run_id, generation, path, attempt, status, record, written_at";
const STEP_UPSERT: &str = "ON CONFLICT (run_id, generation, path, attempt) \
     DO UPDATE SET status = excluded.status, record = excluded.record, written_at = excluded.written_at";
/// Rows per statement: 7 parameters each, far below either backend's limit.
const STEP_ROWS_PER_STATEMENT: usize = 100;

impl StepRows {
    fn new(recs: &[StepRecord], now: i64) -> StepRows {
        let mut rows: Vec<(i64, String, i64, String, String)> = Vec::with_capacity(recs.len());
        for rec in recs {
            let status = serde_json::to_value(rec.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let record = serde_json::to_string(rec).expect("a step record serialises");
            let key = (
                i64::from(rec.generation),
                rec.path.clone(),
                i64::from(rec.attempt),
            );
            let row = (key.0, key.1, key.2, status, record);
            match rows
                .iter_mut()
                .find(|r| r.0 == row.0 && r.1 == row.1 && r.2 == row.2)
            {
                Some(r) => *r = row,
                None => rows.push(row),
            }
        }
        StepRows { rows, now }
    }

    /// Turn the held started record of `path` into a failure saying `why`.
    fn fail_step(&mut self, path: &str, why: &str, now: i64) {
        for row in self.rows.iter_mut().filter(|r| r.1 == path) {
            if let Ok(mut rec) = serde_json::from_str::<StepRecord>(&row.4) {
                rec.status = flowbot_core::StepStatus::Failed;
                rec.error = Some(flowbot_core::runner::StepError {
                    message: why.to_string(),
                    retryable: false,
                    code: None,
                    fields: Vec::new(),
                    details: None,
                });
                rec.finished_at = jiff::Timestamp::from_millisecond(now).ok();
                row.3 = "failed".into();
                row.4 = serde_json::to_string(&rec).expect("a step record serialises");
            }
        }
    }

    /// `($k, …, $k+6), …` for `n` rows, numbered from `first`.
    fn placeholders(n: usize, first: usize) -> String {
        (0..n)
            .map(|i| {
                let b = first + i * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b,
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn bind_rows<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        run_id: &'q str,
        rows: &'q [(i64, String, i64, String, String)],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for (generation, path, attempt, status, record) in rows {
            q = q
                .bind(run_id)
                .bind(*generation)
                .bind(path.as_str())
                .bind(*attempt)
                .bind(status.as_str())
                .bind(record.as_str())
                .bind(self.now);
        }
        q
    }

    /// Write the rows (the caller fences).
    async fn insert(&self, conn: &mut AnyConnection, run_id: &str) -> Result<()> {
        for chunk in self.rows.chunks(STEP_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO step_records ({STEP_COLUMNS}) VALUES {} {STEP_UPSERT}",
                Self::placeholders(chunk.len(), 1)
            );
            self.bind_rows(sqlx::query(&sql), run_id, chunk)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Write the rows only while the lease holds, checking it in the same statement (in
    /// PostgreSQL also locking the run, so a reclaim waits for this write's commit).
    /// Returns the rows written: 0 when the lease is lost.
    async fn insert_fenced(
        &self,
        conn: &mut AnyConnection,
        lease: &Lease,
        backend: Backend,
    ) -> Result<u64> {
        let mut written = 0;
        for chunk in self.rows.chunks(STEP_ROWS_PER_STATEMENT) {
            let values = Self::placeholders(chunk.len(), 3);
            let sql = match backend {
                Backend::Postgres => format!(
                    "WITH f AS (UPDATE runs SET lease_expires_at = lease_expires_at \
                     WHERE id = $1 AND lease_token = $2 AND status = 'running' RETURNING id) \
                     INSERT INTO step_records ({STEP_COLUMNS}) \
                     SELECT v.* FROM (VALUES {values}) AS v({STEP_COLUMNS}) \
                     WHERE EXISTS (SELECT 1 FROM f) {STEP_UPSERT}"
                ),
                // One writer per file: nothing can take the lease between the check and
                // the insert. (The WHERE also tells SQLite's parser the upsert clause
                // belongs to the INSERT.)
                Backend::Sqlite => format!(
                    "INSERT INTO step_records ({STEP_COLUMNS}) \
                     SELECT * FROM (VALUES {values}) \
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND lease_token = $2 \
                     AND status = 'running') {STEP_UPSERT}"
                ),
            };
            let q = sqlx::query(&sql)
                .bind(lease.run_id.as_str())
                .bind(lease.token.as_str());
            written += self
                .bind_rows(q, &lease.run_id, chunk)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        Ok(written)
    }
}

type Answer = tokio::sync::oneshot::Sender<Result<()>>;

/// A run's step records waiting for the next shared write.
pub(crate) struct PendingRecords {
    lease: Lease,
    rows: StepRows,
    done: Answer,
}

/// Write the records of several runs, each only while its lease holds (in PostgreSQL also
/// locking the run, so a reclaim waits for this write's commit). Returns the runs whose
/// lease held: the others' records were not written.
async fn insert_fenced_runs(
    conn: &mut AnyConnection,
    work: &[(Lease, StepRows)],
    backend: Backend,
) -> Result<HashSet<String>> {
    let mut held = HashSet::with_capacity(work.len());
    // Runs grouped so that no statement carries more than STEP_ROWS_PER_STATEMENT rows; a
    // run with more goes alone, in chunks.
    let mut groups: Vec<&[(Lease, StepRows)]> = Vec::new();
    let (mut start, mut rows) = (0, 0);
    for (i, (_, r)) in work.iter().enumerate() {
        if i > start && rows + r.rows.len() > STEP_ROWS_PER_STATEMENT {
            groups.push(&work[start..i]);
            (start, rows) = (i, 0);
        }
        rows += r.rows.len();
    }
    if start < work.len() {
        groups.push(&work[start..]);
    }
    for group in groups {
        if let [(lease, rows)] = group {
            if rows.insert_fenced(conn, lease, backend).await? > 0 {
                held.insert(lease.run_id.clone());
            }
            continue;
        }
        let leases = (0..group.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        match backend {
            Backend::Postgres => {
                let total: usize = group.iter().map(|(_, r)| r.rows.len()).sum();
                let values = StepRows::placeholders(total, 2 * group.len() + 1);
                let sql = format!(
                    "WITH l(id, tok) AS (VALUES {leases}), \
                     f AS (UPDATE runs SET lease_expires_at = lease_expires_at FROM l \
                       WHERE runs.id = l.id AND runs.lease_token = l.tok \
                       AND runs.status = 'running' RETURNING runs.id), \
                     w AS (INSERT INTO step_records ({STEP_COLUMNS}) \
                       SELECT v.* FROM (VALUES {values}) AS v({STEP_COLUMNS}) \
                       WHERE v.run_id IN (SELECT id FROM f) {STEP_UPSERT}) \
                     SELECT id FROM f"
                );
                let mut q = bind_leases(sqlx::query(&sql), group);
                for (lease, rows) in group {
                    q = rows.bind_rows(q, &lease.run_id, &rows.rows);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    held.insert(row.try_get::<String, _>("id")?);
                }
            }
            Backend::Sqlite => {
                // One writer per file: nothing can take a lease between the check and the
                // insert.
                let sql = format!(
                    "SELECT id FROM runs WHERE status = 'running' \
                     AND (id, lease_token) IN (VALUES {leases})"
                );
                let mut now_held = HashSet::new();
                for row in bind_leases(sqlx::query(&sql), group)
                    .fetch_all(&mut *conn)
                    .await?
                {
                    now_held.insert(row.try_get::<String, _>("id")?);
                }
                let kept: Vec<&(Lease, StepRows)> = group
                    .iter()
                    .filter(|(lease, _)| now_held.contains(&lease.run_id))
                    .collect();
                let total: usize = kept.iter().map(|(_, r)| r.rows.len()).sum();
                if total > 0 {
                    let sql = format!(
                        "INSERT INTO step_records ({STEP_COLUMNS}) VALUES {} {STEP_UPSERT}",
                        StepRows::placeholders(total, 1)
                    );
                    let mut q = sqlx::query(&sql);
                    for (lease, rows) in kept {
                        q = rows.bind_rows(q, &lease.run_id, &rows.rows);
                    }
                    q.execute(&mut *conn).await?;
                }
                held.extend(now_held);
            }
        }
    }
    Ok(held)
}

/// Each run's id and lease token, in the order of `group`.
fn bind_leases<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    group: &'q [(Lease, StepRows)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for (lease, _) in group {
        q = q.bind(lease.run_id.as_str()).bind(lease.token.as_str());
    }
    q
}

pub(crate) fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost(lease.run_id.clone())
}
