//! The event inbox: an event and its run stored in one transaction (or the event alone,
//! when it is refused, ignored or a duplicate), and the events as the inbox keeps them.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::runs::*;
use crate::{new_id, Result, Store, StoreError};

/// Where an event came from; only manual runs start while a flow's trigger is OFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Poll,
    Schedule,
    Manual,
    /// An answer to a form trigger's page.
    Form,
    /// A row of a table changed.
    Table,
    /// A mail received by the SMTP receiver.
    Mail,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
            Source::Schedule => "schedule",
            Source::Manual => "manual",
            Source::Form => "form",
            Source::Table => "table",
            Source::Mail => "mail",
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
    /// Files sent with the event (a form's file fields), already written as pending
    /// (`Store::save_file`): attached to the event in its transaction.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// An event as the inbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// Tell the workers of other processes, when the caller's transaction commits, that runs
/// were queued (PostgreSQL `NOTIFY`; one process's workers are woken by
/// [`Store::wake_workers`] after the commit). Every write that queues a run calls it.
pub(crate) async fn announce_queued(conn: &mut AnyConnection) -> Result<()> {
    if conn.backend_name() == "PostgreSQL" && !crate::writer::announce() {
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
    if ev.dedupe.is_none() && ev.concurrency_key.is_ok() && ev.files.is_empty() {
        return insert_event_at_once(conn, now, ev).await;
    }
    // Every file must be there, pending, before anything is written (a bare write).
    for id in &ev.files {
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM files WHERE id = $1 AND state = 'pending'")
                .bind(id.clone())
                .fetch_optional(&mut *conn)
                .await?;
        if pending.is_none() {
            return Err(StoreError::Conflict(format!(
                "file {id} is not waiting to be attached to an event"
            )));
        }
    }
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

    if outcome != "duplicate" {
        for id in &ev.files {
            sqlx::query("UPDATE files SET state = 'attached', event_id = $2 WHERE id = $1")
                .bind(id.clone())
                .bind(event_id.clone())
                .execute(&mut *conn)
                .await?;
        }
    }
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

macro_rules! event_insert {
    () => {
        "INSERT INTO events (id, flow_id, source, received_at, headers, body, \
         outcome, dedupe_key, detail) \
         SELECT $1, id, $3, $4, $5, $6, \
         CASE WHEN enabled <> 0 OR $3 = 'manual' THEN 'queued' ELSE 'ignored' END, NULL, NULL \
         FROM flows WHERE id = $2"
    };
}
macro_rules! run_insert {
    () => {
        "INSERT INTO runs (id, flow_id, flow_version, event_id, status, attempt, \
         next_attempt_at, concurrency_key, trigger_value, error, created_at, finished_at) \
         SELECT $7, f.id, COALESCE($8, f.current_version), $1, 'queued', 0, $4, $9, $10, NULL, $4, NULL \
         FROM flows f"
    };
}
/// The event, reading the flow's switch itself.
const EVENT: &str = event_insert!();
/// PostgreSQL: the event, then its run if it was queued, in one statement.
const PG_EVENT_AND_RUN: &str = concat!(
    "WITH e AS (",
    event_insert!(),
    " RETURNING outcome), r AS (",
    run_insert!(),
    ", e WHERE f.id = $2 AND e.outcome = 'queued' RETURNING id) \
     SELECT (SELECT outcome FROM e) AS outcome"
);
/// SQLite: the run, if its event (just inserted) was queued.
const SQLITE_RUN: &str = concat!(
    run_insert!(),
    " WHERE f.id = $2 AND EXISTS (SELECT 1 FROM events WHERE id = $1 AND outcome = 'queued')"
);

/// The common case — no dedupe window, the key rendered — without reading the flow first:
/// the inserts read it themselves (PostgreSQL: one statement; SQLite: two, instead of
/// three). Nothing is written when the flow does not exist.
async fn insert_event_at_once(
    conn: &mut AnyConnection,
    now: i64,
    ev: &NewEvent,
) -> Result<EnqueueOutcome> {
    let event_id = new_id();
    let run_id = new_id();
    let (headers, body, trigger) = (
        ev.headers.to_string(),
        ev.body.to_string(),
        ev.trigger.to_string(),
    );
    let key = ev.concurrency_key.clone().ok().flatten();
    // Every statement takes the same parameters ($1 … $10), each using those it names.
    let query = |sql: &'static str| {
        sqlx::query(sql)
            .bind(event_id.clone())
            .bind(ev.flow_id.clone())
            .bind(ev.source.as_str())
            .bind(now)
            .bind(headers.clone())
            .bind(body.clone())
            .bind(run_id.clone())
            .bind(ev.flow_version)
            .bind(key.clone())
            .bind(trigger.clone())
    };
    let outcome: Option<String> = if conn.backend_name() == "PostgreSQL" {
        query(PG_EVENT_AND_RUN)
            .fetch_one(&mut *conn)
            .await?
            .try_get("outcome")?
    } else if query(EVENT).execute(&mut *conn).await?.rows_affected() == 0 {
        None
    } else {
        // A second statement (one call holding both measured no faster); it sees the event.
        let runs = query(SQLITE_RUN).execute(&mut *conn).await?.rows_affected();
        Some(if runs > 0 { "queued" } else { "ignored" }.to_string())
    };
    match outcome.as_deref() {
        None => Err(StoreError::FlowNotFound(ev.flow_id.clone())),
        Some("queued") => {
            announce_queued(conn).await?;
            Ok(EnqueueOutcome::Queued { event_id, run_id })
        }
        Some(_) => Ok(EnqueueOutcome::Ignored { event_id }),
    }
}

impl Store {
    /// Store an event and enqueue its run in one transaction; returns once committed.
    pub async fn enqueue(&self, ev: NewEvent) -> Result<EnqueueOutcome> {
        let now = self.now_ms();
        let outcome = self
            .inner
            .intake
            // Bare: a missing flow is found before anything is written.
            .write_bare(move |conn| Box::pin(async move { insert_event(conn, now, &ev).await }))
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
}
