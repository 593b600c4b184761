//! App files kept in the database (added from the web UI), so that every process — servers
//! and workers alike — loads the same apps.

use serde_json::json;

use crate::audit::{audit, Actor};
use crate::{Result, Store};

/// A stored app file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApp {
    pub id: String,
    pub yaml: String,
    pub updated_at: i64,
}

impl Store {
    /// Add or replace the app file `id` (its text was checked by the caller).
    pub async fn save_app_file(&self, id: &str, yaml: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, yaml, actor) = (id.to_string(), yaml.to_string(), Into::<Actor>::into(actor));
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO app_files (id, yaml, created_by, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET yaml = excluded.yaml, created_by = excluded.created_by, updated_at = excluded.updated_at",
                    )
                    .bind(id.clone())
                    .bind(yaml)
                    .bind(actor.name.clone())
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    audit(conn, now, &actor, "app.save", &id, json!({})).await
                })
            })
            .await
    }

    /// Every stored app file, oldest change first; with `since`, only those changed after it.
    pub async fn app_files(&self, since: Option<i64>) -> Result<Vec<StoredApp>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, yaml, updated_at FROM app_files WHERE updated_at > $1 ORDER BY updated_at, id",
        )
        .bind(since.unwrap_or(i64::MIN))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, yaml, updated_at)| StoredApp {
                id,
                yaml,
                updated_at,
            })
            .collect())
    }
}
