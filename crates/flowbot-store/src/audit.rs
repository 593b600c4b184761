//! The audit log: who changed what, when and from which address. Entries are written in
//! the same transaction as the change they describe (so a change is never without its
//! entry, nor an entry without its change); events that change nothing else — a sign-in, a
//! failed sign-in, a connection used in a test — are written on their own. Details never
//! hold a secret: callers pass names, ids, roles and version numbers only.

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::{Result, Store};

/// Who makes a change, and from where (empty for the command line and flowbot itself).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub name: String,
    pub address: String,
}

impl Actor {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            address: address.into(),
        }
    }
}

impl From<&str> for Actor {
    fn from(name: &str) -> Actor {
        Actor::new(name, "")
    }
}

impl From<&Actor> for Actor {
    fn from(a: &Actor) -> Actor {
        a.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// The user name (or `flowbot` for what the server did itself).
    pub actor: String,
    /// The client's address; empty for the command line.
    pub address: String,
    /// What happened, e.g. `flow.import`, `member.role`, `session.sign_in_failed`.
    pub action: String,
    /// What it happened to: a flow id, a user name, a connection name…
    pub target: String,
    /// Before → after for settings and roles, the version number for flows.
    pub detail: Value,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// An action, or its family (`flow` matches `flow.import`, `flow.delete`…).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub until: Option<i64>,
    /// Entries with an id below this one (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub(crate) async fn audit(
    conn: &mut AnyConnection,
    now: i64,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, address, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now)
    .bind(actor.name.clone())
    .bind(actor.address.clone())
    .bind(action.to_string())
    .bind(target.to_string())
    .bind(detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Record an event that changes nothing else (a sign-in, a failed one, a connection
    /// used in a test).
    pub async fn record_audit(
        &self,
        actor: impl Into<Actor>,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<()> {
        let (actor, action, target) = (actor.into(), action.to_string(), target.to_string());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move { audit(conn, now, &actor, &action, &target, detail).await })
            })
            .await
    }

    /// The newest entries first, at most `limit`.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        self.audit_entries(&AuditFilter {
            limit,
            ..AuditFilter::default()
        })
        .await
    }

    /// Entries matching the filter, newest first.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT id, at, actor, address, action, target, detail FROM audit_log WHERE 1 = 1",
        );
        let mut texts: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        // Placeholders are numbered in the order they are bound: texts first, then numbers.
        let mut text_clauses = Vec::new();
        if let Some(a) = &f.actor {
            texts.push(a.clone());
            text_clauses.push(format!("actor = ${}", texts.len()));
        }
        if let Some(a) = &f.action {
            texts.push(a.clone());
            let n = texts.len();
            texts.push(format!("{a}.%"));
            text_clauses.push(format!("(action = ${n} OR action LIKE ${})", n + 1));
        }
        if let Some(t) = &f.target {
            texts.push(t.clone());
            text_clauses.push(format!("target = ${}", texts.len()));
        }
        for c in text_clauses {
            sql.push_str(" AND ");
            sql.push_str(&c);
        }
        for (value, clause) in [(f.since, "at >="), (f.until, "at <"), (f.before_id, "id <")] {
            if let Some(v) = value {
                numbers.push(v);
                sql.push_str(&format!(" AND {clause} ${}", texts.len() + numbers.len()));
            }
        }
        numbers.push(f.limit.clamp(1, 10_000));
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT ${}",
            texts.len() + numbers.len()
        ));
        let mut q = sqlx::query(&sql);
        for t in texts {
            q = q.bind(t);
        }
        for n in numbers {
            q = q.bind(n);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    address: r.try_get("address")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)
                        .unwrap_or(Value::Null),
                })
            })
            .collect()
    }

    /// Entries older than `cutoff` (milliseconds), batch by batch; how many went.
    pub(crate) async fn purge_audit(&self, cutoff: i64, batch: u32) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self
                .inner
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        Ok(sqlx::query(&format!(
                            "DELETE FROM audit_log WHERE id IN \
                             (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT {batch})"
                        ))
                        .bind(cutoff)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected())
                    })
                })
                .await?;
            total += n;
            if n < u64::from(batch) {
                return Ok(total);
            }
        }
    }
}
