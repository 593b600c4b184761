//! Short-lived state that must survive a hop between servers: OAuth connects under way and
//! "test trigger" captures. With several `flowbot serve` processes behind a load balancer,
//! the OAuth callback or the captured webhook may reach another process than the one that
//! started the attempt, so neither may live in one process's memory.
//!
//! A capture is a row a waiting request opens; ingress, on any server, fills every open
//! capture of its flow with the sample and wakes the waiters — PostgreSQL `NOTIFY
//! flowbot_captures` across processes, an in-process signal on SQLite (where only one
//! process holds the store) — with a poll as the fallback.

use std::time::Duration;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{new_id, Backend, Result, Store, StoreError};

/// How long an OAuth connect may take from "connect" to the callback.
const OAUTH_TTL_MS: i64 = 10 * 60 * 1000;
/// Captures nobody collected (their server died) are removed after this.
const CAPTURE_TTL_MS: i64 = 10 * 60 * 1000;
pub(crate) const CAPTURES_CHANNEL: &str = "flowbot_captures";

/// An OAuth connect under way, keyed by its `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOauth {
    pub connection_id: String,
    /// The PKCE verifier: stored sealed, like connection settings.
    pub verifier: String,
    pub redirect_uri: String,
    /// The page to return to after the callback (a path on this server).
    pub return_to: Option<String>,
}

impl Store {
    /// Remember an OAuth connect until its callback (or for ten minutes).
    pub async fn oauth_begin(&self, state: &str, p: &PendingOauth) -> Result<()> {
        let (sealed, key_id) = self.cipher().seal(p.verifier.as_bytes());
        let (state, conn_id, redirect, back) = (
            state.to_string(),
            p.connection_id.clone(),
            p.redirect_uri.clone(),
            p.return_to.clone(),
        );
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM oauth_pending WHERE created_at < $1")
                        .bind(now - OAUTH_TTL_MS)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(
                        "INSERT INTO oauth_pending (state, connection_id, verifier_box, key_id, redirect_uri, created_at, return_to) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(state)
                    .bind(conn_id)
                    .bind(sealed)
                    .bind(key_id)
                    .bind(redirect)
                    .bind(now)
                    .bind(back)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The connect `state` stands for, taken once: a replayed or late callback finds
    /// nothing.
    pub async fn oauth_take(&self, state: &str) -> Result<Option<PendingOauth>> {
        let Some(row) = self
            .take_once(
                "oauth_pending",
                "connection_id, verifier_box, key_id, redirect_uri, created_at, return_to",
                state,
                OAUTH_TTL_MS,
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(PendingOauth {
            return_to: row.try_get("return_to")?,
            connection_id: row.try_get("connection_id")?,
            verifier: self.open_verifier(&row)?,
            redirect_uri: row.try_get("redirect_uri")?,
        }))
    }

    /// The row of `table` whose `state` is this one, deleted in the same write that reads
    /// it: a replayed or late callback finds nothing. None too when it is older than
    /// `ttl_ms`.
    pub(crate) async fn take_once(
        &self,
        table: &'static str,
        columns: &'static str,
        state: &str,
        ttl_ms: i64,
    ) -> Result<Option<AnyRow>> {
        let state = state.to_string();
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    // One statement: of two servers taking the same row at once, only one
                    // gets it back.
                    let row = sqlx::query(&format!(
                        "DELETE FROM {table} WHERE state = $1 RETURNING {columns}"
                    ))
                    .bind(state)
                    .fetch_optional(&mut *conn)
                    .await?;
                    match row {
                        Some(r) if now - r.try_get::<i64, _>("created_at")? <= ttl_ms => {
                            Ok(Some(r))
                        }
                        _ => Ok(None),
                    }
                })
            })
            .await
    }

    /// The PKCE verifier sealed in a taken row's `verifier_box`.
    pub(crate) fn open_verifier(&self, row: &AnyRow) -> Result<String> {
        let sealed: Vec<u8> = row.try_get("verifier_box")?;
        let key_id: String = row.try_get("key_id")?;
        String::from_utf8(self.cipher().open(&sealed, &key_id)?)
            .map_err(|e| StoreError::Corrupt(format!("a PKCE verifier: {e}")))
    }

    /// Open a capture of the flow's next webhook for `wait`; its id.
    pub async fn capture_open(&self, flow_id: &str, wait: Duration) -> Result<String> {
        let id = new_id();
        let (cid, flow) = (id.clone(), flow_id.to_string());
        let now = self.now_ms();
        let until = now + wait.as_millis() as i64;
        self.write_flows(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM trigger_captures WHERE created_at < $1")
                        .bind(now - CAPTURE_TTL_MS)
                        .execute(&mut *conn)
                        .await?;
                    let n = sqlx::query(
                        "UPDATE flows SET capture_until = CASE WHEN capture_until > $1 \
                         THEN capture_until ELSE $1 END WHERE id = $2",
                    )
                    .bind(until)
                    .bind(flow.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::FlowNotFound(flow));
                    }
                    sqlx::query(
                        "INSERT INTO trigger_captures (id, flow_id, created_at, sample) VALUES ($1, $2, $3, NULL)",
                    )
                    .bind(cid)
                    .bind(flow)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(id)
    }

    /// Give `sample` to every open capture of the flow, and wake their waiters.
    pub async fn capture_fill(&self, flow_id: &str, sample: &Value) -> Result<u64> {
        let (flow, text) = (flow_id.to_string(), sample.to_string());
        let backend = self.backend();
        let n = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE trigger_captures SET sample = $1 WHERE flow_id = $2 AND sample IS NULL",
                    )
                    .bind(text)
                    .bind(flow.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n > 0 && backend == Backend::Postgres {
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(CAPTURES_CHANNEL)
                            .bind(flow)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(n)
                })
            })
            .await?;
        if n > 0 {
            self.inner.captured.notify_waiters();
        }
        Ok(n)
    }

    /// Wait up to `wait` for the capture to be filled; its sample, or `None`. The capture
    /// is removed either way.
    pub async fn capture_wait(&self, id: &str, wait: Duration) -> Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut listener = match &self.inner.pg_url {
            Some(url) => match sqlx::postgres::PgListener::connect(url).await {
                Ok(mut l) => l.listen(CAPTURES_CHANNEL).await.ok().map(|_| l),
                Err(_) => None,
            },
            None => None,
        };
        let found = loop {
            // Registered before the read, so a fill between the read and the wait is seen.
            let woken = self.inner.captured.notified();
            let sample: Option<Option<String>> =
                sqlx::query_scalar("SELECT sample FROM trigger_captures WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.pool())
                    .await?;
            match sample {
                Some(Some(text)) => break serde_json::from_str(&text).ok(),
                None => break None,
                Some(None) => {}
            }
            let poll = tokio::time::sleep(Duration::from_millis(500));
            let heard = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let lost = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break None,
                _ = woken => false,
                _ = poll => false,
                ok = heard => !ok,
            };
            if lost {
                // The listening connection broke: the poll carries on alone.
                listener = None;
            }
        };
        let id = id.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM trigger_captures WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(found)
    }
}
