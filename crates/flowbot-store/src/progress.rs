//! Liveness of workers, and where long jobs have got to.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::{Result, Store, StoreError};

impl Store {
    /// A worker reports in (at start and then every few seconds while it runs).
    pub async fn worker_seen(&self, id: &str, started_at: i64) -> Result<()> {
        let id = id.to_string();
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO workers (id, started_at, last_seen) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
                    )
                    .bind(id)
                    .bind(started_at)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// A worker stopped cleanly; one that died ages out of [`Store::live_workers`].
    pub async fn worker_gone(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM workers WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Workers that reported in within `within`, by id.
    pub async fn live_workers(&self, within: Duration) -> Result<Vec<String>> {
        let since = self.now_ms() - within.as_millis() as i64;
        let rows = sqlx::query("SELECT id FROM workers WHERE last_seen >= $1 ORDER BY id")
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    /// The saved state of a long job, if it has one.
    pub async fn job_progress(&self, name: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT state FROM job_progress WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.try_get("state")?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("job `{name}`: {e}")))
            }
        }
    }

    /// Save (or, with `None`, forget) a long job's state.
    pub async fn set_job_progress(&self, name: &str, state: Option<&Value>) -> Result<()> {
        let name = name.to_string();
        let text = state.map(Value::to_string);
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    match text {
                        Some(text) => sqlx::query(
                            "INSERT INTO job_progress (name, state, updated_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(name)
                        .bind(text)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?,
                        None => sqlx::query("DELETE FROM job_progress WHERE name = $1")
                            .bind(name)
                            .execute(&mut *conn)
                            .await?,
                    };
                    Ok(())
                })
            })
            .await
    }

    /// The editor's sample obtained values of a flow, by step id (`trigger` included).
    pub async fn samples(&self, flow_id: &str) -> Result<BTreeMap<String, Value>> {
        let rows = sqlx::query("SELECT step_id, sample FROM flow_samples WHERE flow_id = $1")
            .bind(flow_id.to_string())
            .fetch_all(self.pool())
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let text: String = r.try_get("sample")?;
            let v = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("sample of {flow_id}: {e}")))?;
            out.insert(r.try_get("step_id")?, v);
        }
        Ok(out)
    }

    /// Keep a sample obtained value for the editor's pickers and tests.
    pub async fn set_sample(&self, flow_id: &str, step_id: &str, sample: &Value) -> Result<()> {
        let (flow_id, step_id, text) =
            (flow_id.to_string(), step_id.to_string(), sample.to_string());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO flow_samples (flow_id, step_id, sample, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (flow_id, step_id) \
                         DO UPDATE SET sample = excluded.sample, updated_at = excluded.updated_at",
                    )
                    .bind(flow_id)
                    .bind(step_id)
                    .bind(text)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
