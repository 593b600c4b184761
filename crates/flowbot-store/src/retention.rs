//! Retention: run history is purged by age and/or count per flow, in small batches (so a
//! purge never holds the write lock for long), and SQLite gives the space back. Events that
//! never had a run (ignored, duplicates, unreadable bodies) and audit entries go by age too.

use std::time::Duration;

use sqlx::Executor;

use crate::{Backend, Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished runs older than this are purged.
    pub max_age: Option<Duration>,
    /// At most this many finished runs are kept per flow (the newest).
    pub max_runs_per_flow: Option<u64>,
    /// Runs deleted per transaction.
    pub batch: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_runs_per_flow: None,
            batch: 500,
        }
    }
}

const FINISHED: &str = "status IN ('succeeded', 'failed', 'canceled')";

impl Store {
    /// Purge what the policy says, batch by batch. Returns how many runs were deleted.
    pub async fn purge(&self, policy: &Retention) -> Result<u64> {
        let mut total = 0;
        let mut events = 0;
        if let Some(age) = policy.max_age {
            let cutoff = self.now_ms() - age.as_millis() as i64;
            let select = format!(
                "SELECT id FROM runs WHERE {FINISHED} AND finished_at < {cutoff} ORDER BY seq LIMIT {}",
                policy.batch
            );
            total += self.delete_runs_batched(&select).await?;
            events = self.delete_runless_events(cutoff, policy.batch).await?;
            // The audit log is kept as long as the runs it explains.
            events += self.purge_audit(cutoff, policy.batch).await?;
        }
        if let Some(keep) = policy.max_runs_per_flow {
            let flows: Vec<String> = sqlx::query_scalar("SELECT DISTINCT flow_id FROM runs")
                .fetch_all(self.pool())
                .await?;
            for flow in flows {
                let flow = flow.replace('\'', "''");
                // The newest `keep` finished runs stay; older ones go, oldest first.
                let select = format!(
                    "SELECT id FROM runs WHERE flow_id = '{flow}' AND {FINISHED} AND seq < COALESCE(( \
                       SELECT seq FROM runs WHERE flow_id = '{flow}' AND {FINISHED} \
                       ORDER BY seq DESC LIMIT 1 OFFSET {}), -1) \
                     ORDER BY seq LIMIT {}",
                    keep.saturating_sub(1),
                    policy.batch
                );
                total += self.delete_runs_batched(&select).await?;
            }
        }
        // Files go with their events (and files whose answer was never stored).
        events += self.purge_files().await?;
        if total + events > 0 && self.backend() == Backend::Sqlite {
            // Hand freed pages back to the file system (the file was created with
            // incremental auto-vacuum).
            self.pool().execute("PRAGMA incremental_vacuum").await?;
        }
        Ok(total)
    }

    /// Events that never had a run (ignored while the trigger was OFF, duplicates,
    /// unreadable bodies) older than `cutoff`, batch by batch.
    async fn delete_runless_events(&self, cutoff: i64, batch: u32) -> Result<u64> {
        until_none(|| {
            self.inner.writer.write(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(&format!(
                        "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.received_at < $1 \
                         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = e.id) LIMIT {batch})"
                    ))
                    .bind(cutoff)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected())
                })
            })
        })
        .await
    }

    async fn delete_runs_batched(&self, select_ids: &str) -> Result<u64> {
        until_none(|| {
            let select = select_ids.to_string();
            self.inner
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        let ids: Vec<String> = sqlx::query_scalar(&select).fetch_all(&mut *conn).await?;
                        if ids.is_empty() {
                            return Ok(0u64);
                        }
                        let list = ids
                            .iter()
                            .map(|i| format!("'{}'", i.replace('\'', "''")))
                            .collect::<Vec<_>>()
                            .join(",");
                        sqlx::query(&format!("DELETE FROM step_records WHERE run_id IN ({list})"))
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(&format!(
                            "DELETE FROM events WHERE id IN (SELECT event_id FROM runs WHERE id IN ({list}) AND event_id IS NOT NULL) \
                             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id AND r.id NOT IN ({list}))"
                        ))
                        .execute(&mut *conn)
                        .await?;
                        let n = sqlx::query(&format!("DELETE FROM runs WHERE id IN ({list})"))
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        Ok(n)
                    })
                })
        })
        .await
    }
}

/// Run one batch after another until a batch does nothing; how much they did in all.
async fn until_none<F, Fut>(mut batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}
