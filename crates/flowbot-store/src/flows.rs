//! Flows and their versions, saved connections (encrypted), slot bindings, the audit log,
//! and master-key rotation.

use std::collections::HashMap;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use flowbot_core::Connection;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::audit::{audit, Actor};
use crate::crypto::{self, MasterKey};
use crate::{new_id, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FlowInfo {
    pub id: String,
    pub name: String,
    pub current_version: i64,
    pub enabled: bool,
    /// The secret part of the flow's webhook URL.
    pub webhook_token: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when someone waits for a "test trigger" capture of this flow (ms; 0: nobody).
    #[serde(skip)]
    pub capture_until: i64,
    /// The project the flow belongs to.
    pub project_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FlowVersion {
    pub flow_id: String,
    pub version: i64,
    pub yaml: String,
    pub created_at: i64,
    pub created_by: Option<String>,
}

/// A saved connection as it may be listed: never its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConnectionInfo {
    pub id: String,
    pub name: String,
    pub app: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The project the connection belongs to.
    pub project_id: String,
    /// The other projects whose flows may use it.
    pub shared_with: Vec<String>,
}

const FLOW_COLUMNS: &str = "id, name, current_version, enabled, webhook_token, created_at, updated_at, capture_until, project_id";

fn flow_row(r: &AnyRow) -> Result<FlowInfo> {
    Ok(FlowInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        current_version: r.try_get("current_version")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        webhook_token: r.try_get("webhook_token")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        capture_until: r.try_get("capture_until")?,
        project_id: r.try_get("project_id")?,
    })
}

fn version_row(r: &AnyRow) -> Result<FlowVersion> {
    Ok(FlowVersion {
        flow_id: r.try_get("flow_id")?,
        version: r.try_get("version")?,
        yaml: r.try_get("yaml")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

fn connection_row(r: &AnyRow) -> Result<ConnectionInfo> {
    Ok(ConnectionInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        app: r.try_get("app")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        project_id: r.try_get("project_id")?,
        shared_with: Vec::new(),
    })
}

/// Whether a webhook token proposed by a client has the shape [`new_token`] gives: a page
/// shows a new flow's URL before the flow is saved, and the saved flow keeps it.
pub fn is_webhook_token(t: &str) -> bool {
    t.len() == 48
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// 192 random bits, hex: the unguessable part of a webhook URL.
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Append to the audit log inside the caller's transaction.
/// How a new flow comes in from the flow page.
#[derive(Debug, Default, Clone)]
pub struct NewFlow {
    /// The token the page showed in the webhook URL (ignored unless well formed).
    pub webhook_token: Option<String>,
    /// Refuse when a flow has the id already.
    pub create_only: bool,
    /// The project a new flow goes into (None: the default project). An existing flow
    /// stays where it is.
    pub project: Option<String>,
}

impl Store {
    /// Import a flow's YAML: a new flow (trigger OFF, a fresh webhook token), or a new version
    /// of an existing one. Importing the YAML the flow already has changes nothing.
    pub async fn import_flow(
        &self,
        id: &str,
        name: &str,
        yaml: &str,
        actor: impl Into<Actor>,
    ) -> Result<FlowInfo> {
        self.import_flow_as(id, name, yaml, actor, NewFlow::default())
            .await
    }

    /// As [`Store::import_flow`], for a flow made on the flow page: it keeps the webhook
    /// token its page showed, and when `create_only` it refuses to become a new version of
    /// a flow that has the id already (checked in the same transaction as the insert).
    pub async fn import_flow_as(
        &self,
        id: &str,
        name: &str,
        yaml: &str,
        actor: impl Into<Actor>,
        new: NewFlow,
    ) -> Result<FlowInfo> {
        let token = new
            .webhook_token
            .filter(|t| is_webhook_token(t))
            .unwrap_or_else(new_token);
        let create_only = new.create_only;
        let project = new
            .project
            .unwrap_or_else(|| crate::DEFAULT_PROJECT.to_string());
        let (id, name, yaml, actor) = (
            id.to_string(),
            name.to_string(),
            yaml.to_string(),
            Into::<Actor>::into(actor),
        );
        let now = self.now_ms();
        self.write_flows(move |conn| {
                Box::pin(async move {
                    let existing = sqlx::query(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"))
                        .bind(id.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let version = match existing {
                        Some(_) if create_only => {
                            return Err(StoreError::Conflict(format!("a flow with id `{id}` exists already")));
                        }
                        Some(row) => {
                            let flow = flow_row(&row)?;
                            let current: String = sqlx::query_scalar(
                                "SELECT yaml FROM flow_versions WHERE flow_id = $1 AND version = $2",
                            )
                            .bind(id.clone())
                            .bind(flow.current_version)
                            .fetch_one(&mut *conn)
                            .await?;
                            if current == yaml {
                                return Ok(flow);
                            }
                            let v = flow.current_version + 1;
                            sqlx::query("UPDATE flows SET name = $1, current_version = $2, updated_at = $3 WHERE id = $4")
                                .bind(name.clone())
                                .bind(v)
                                .bind(now)
                                .bind(id.clone())
                                .execute(&mut *conn)
                                .await?;
                            v
                        }
                        None => {
                            crate::projects::check_project(conn, &project).await?;
                            sqlx::query(
                                "INSERT INTO flows (id, name, current_version, enabled, webhook_token, created_at, updated_at, project_id) \
                                 VALUES ($1, $2, 1, 0, $3, $4, $4, $5)",
                            )
                            .bind(id.clone())
                            .bind(name.clone())
                            .bind(token.clone())
                            .bind(now)
                            .bind(project.clone())
                            .execute(&mut *conn)
                            .await?;
                            1
                        }
                    };
                    sqlx::query("INSERT INTO flow_versions (flow_id, version, yaml, created_at, created_by) VALUES ($1, $2, $3, $4, $5)")
                        .bind(id.clone())
                        .bind(version)
                        .bind(yaml.clone())
                        .bind(now)
                        .bind(actor.name.clone())
                        .execute(&mut *conn)
                        .await?;
                    crate::tables::set_watch(conn, &id, &yaml).await?;
                    audit(conn, now, &actor, "flow.import", &id, json!({ "version": version })).await?;
                    let row = sqlx::query(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"))
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await?;
                    flow_row(&row)
                })
            })
            .await
    }

    pub async fn flow(&self, id: &str) -> Result<FlowInfo> {
        let row = sqlx::query(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::FlowNotFound(id.to_string()))?;
        flow_row(&row)
    }

    /// [`Store::flow`] for the webhook path, which asks for every event: reused while this
    /// process has changed no flow and the answer is under [`crate::FLOWS_FRESH`]
    /// old, so another process's change (a rotated token, a capture opened on another
    /// server) is seen within that time. The enqueue reads the flow's switch itself, and
    /// pins the run to the version whose templates rendered its keys.
    pub async fn flow_for_webhook(&self, id: &str) -> Result<FlowInfo> {
        let cache = &self.inner.flows_cache;
        let generation = cache.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Some(info) = cache.infos.get(id, generation) {
            return Ok(info);
        }
        let info = self.flow(id).await?;
        cache.infos.put(id, generation, info.clone());
        Ok(info)
    }

    /// The flow whose webhook token is `token`: a mail's address is `<token>@<domain>`, so
    /// the receiver knows a recipient only by it. None for an unknown token.
    pub async fn flow_by_token(&self, token: &str) -> Result<Option<FlowInfo>> {
        if !is_webhook_token(token) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {FLOW_COLUMNS} FROM flows WHERE webhook_token = $1"
        ))
        .bind(token.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(flow_row).transpose()
    }

    pub async fn flows(&self) -> Result<Vec<FlowInfo>> {
        sqlx::query(&format!(
            "SELECT {FLOW_COLUMNS} FROM flows ORDER BY name, id"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(flow_row)
        .collect()
    }

    pub async fn flow_version(&self, id: &str, version: i64) -> Result<FlowVersion> {
        let row = sqlx::query("SELECT flow_id, version, yaml, created_at, created_by FROM flow_versions WHERE flow_id = $1 AND version = $2")
            .bind(id.to_string())
            .bind(version)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::FlowNotFound(format!("{id} version {version}")))?;
        version_row(&row)
    }

    /// The YAML of the flow's current version.
    pub async fn current_yaml(&self, id: &str) -> Result<String> {
        sqlx::query_scalar(
            "SELECT v.yaml FROM flows f JOIN flow_versions v \
             ON v.flow_id = f.id AND v.version = f.current_version WHERE f.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::FlowNotFound(id.to_string()))
    }

    pub async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersion>> {
        sqlx::query("SELECT flow_id, version, yaml, created_at, created_by FROM flow_versions WHERE flow_id = $1 ORDER BY version DESC")
            .bind(id.to_string())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(version_row)
            .collect()
    }

    /// Turn a flow's trigger ON or OFF.
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (id, actor) = (id.to_string(), Into::<Actor>::into(actor));
        let now = self.now_ms();
        self.write_flows(move |conn| {
            Box::pin(async move {
                let n = sqlx::query("UPDATE flows SET enabled = $1, updated_at = $2 WHERE id = $3")
                    .bind(i64::from(enabled))
                    .bind(now)
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::FlowNotFound(id));
                }
                let action = if enabled {
                    "flow.enable"
                } else {
                    "flow.disable"
                };
                audit(conn, now, &actor, action, &id, json!({})).await
            })
        })
        .await
    }

    /// Delete a flow with its versions and bindings. Its run history goes too.
    pub async fn delete_flow(&self, id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, actor) = (id.to_string(), Into::<Actor>::into(actor));
        let now = self.now_ms();
        self.write_flows(move |conn| {
                Box::pin(async move {
                    for sql in [
                        "DELETE FROM step_records WHERE run_id IN (SELECT id FROM runs WHERE flow_id = $1)",
                        "DELETE FROM runs WHERE flow_id = $1",
                        "DELETE FROM events WHERE flow_id = $1",
                        "DELETE FROM schedule_fires WHERE flow_id = $1",
                        "DELETE FROM trigger_cursors WHERE flow_id = $1",
                        "DELETE FROM flow_connections WHERE flow_id = $1",
                        // Samples are real data: they go with their flow (a new flow of
                        // the same id does not inherit them).
                        "DELETE FROM flow_samples WHERE flow_id = $1",
                        "DELETE FROM flow_versions WHERE flow_id = $1",
                    ] {
                        sqlx::query(sql).bind(id.clone()).execute(&mut *conn).await?;
                    }
                    let n = sqlx::query("DELETE FROM flows WHERE id = $1")
                        .bind(id.clone())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::FlowNotFound(id));
                    }
                    audit(conn, now, &actor, "flow.delete", &id, json!({})).await
                })
            })
            .await
    }

    /// A new webhook token; the old URL stops working at once (on other servers sharing
    /// the database, within [`crate::FLOWS_FRESH`]).
    pub async fn regenerate_webhook_token(
        &self,
        id: &str,
        actor: impl Into<Actor>,
    ) -> Result<String> {
        let (id, actor) = (id.to_string(), Into::<Actor>::into(actor));
        let now = self.now_ms();
        let token = new_token();
        let t = token.clone();
        self.write_flows(move |conn| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE flows SET webhook_token = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(t)
                .bind(now)
                .bind(id.clone())
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::FlowNotFound(id));
                }
                audit(conn, now, &actor, "flow.regenerate_token", &id, json!({})).await
            })
        })
        .await?;
        Ok(token)
    }

    /// Save a connection under a name (replacing the settings of one of that name).
    pub async fn save_connection(
        &self,
        name: &str,
        app: &str,
        settings: &Map<String, Value>,
        actor: impl Into<Actor>,
    ) -> Result<ConnectionInfo> {
        self.save_connection_in(crate::DEFAULT_PROJECT, name, app, settings, actor)
            .await
    }

    /// Save a connection by name: a new one in `project`; an existing one keeps its project.
    pub async fn save_connection_in(
        &self,
        project: &str,
        name: &str,
        app: &str,
        settings: &Map<String, Value>,
        actor: impl Into<Actor>,
    ) -> Result<ConnectionInfo> {
        let project = project.to_string();
        let plaintext = serde_json::to_vec(settings).expect("a JSON map serialises");
        let (sealed, key_id) = self.cipher().seal(&plaintext);
        let (name, app, actor) = (
            name.to_string(),
            app.to_string(),
            Into::<Actor>::into(actor),
        );
        let now = self.now_ms();
        self.write_flows(move |conn| {
                Box::pin(async move {
                    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM connections WHERE name = $1")
                        .bind(name.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let id = match existing {
                        Some(id) => {
                            sqlx::query("UPDATE connections SET app = $1, secret_box = $2, key_id = $3, updated_at = $4 WHERE id = $5")
                                .bind(app.clone())
                                .bind(sealed)
                                .bind(key_id)
                                .bind(now)
                                .bind(id.clone())
                                .execute(&mut *conn)
                                .await?;
                            id
                        }
                        None => {
                            let id = new_id();
                            crate::projects::check_project(conn, &project).await?;
                            sqlx::query("INSERT INTO connections (id, name, app, secret_box, key_id, created_at, updated_at, project_id) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)")
                                .bind(id.clone())
                                .bind(name.clone())
                                .bind(app.clone())
                                .bind(sealed)
                                .bind(key_id)
                                .bind(now)
                                .bind(project.clone())
                                .execute(&mut *conn)
                                .await?;
                            id
                        }
                    };
                    audit(conn, now, &actor, "connection.save", &name, json!({ "app": app })).await?;
                    let row = sqlx::query("SELECT id, name, app, created_at, updated_at, project_id FROM connections WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await?;
                    connection_row(&row)
                })
            })
            .await
    }

    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>> {
        let mut list: Vec<ConnectionInfo> = sqlx::query(
            "SELECT id, name, app, created_at, updated_at, project_id FROM connections ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(connection_row)
        .collect::<Result<_>>()?;
        let shares = sqlx::query(
            "SELECT connection_id, project_id FROM connection_shares ORDER BY project_id",
        )
        .fetch_all(self.pool())
        .await?;
        for r in &shares {
            let (cid, pid): (String, String) =
                (r.try_get("connection_id")?, r.try_get("project_id")?);
            if let Some(c) = list.iter_mut().find(|c| c.id == cid) {
                c.shared_with.push(pid);
            }
        }
        Ok(list)
    }

    /// The connections a flow of `project` may use: its own, and those shared with it.
    pub async fn connections_for(&self, project: &str) -> Result<Vec<ConnectionInfo>> {
        Ok(self
            .connections()
            .await?
            .into_iter()
            .filter(|c| c.project_id == project || c.shared_with.iter().any(|p| p == project))
            .collect())
    }

    /// A connection with its settings decrypted, for a connector call.
    pub async fn connection(&self, id: &str) -> Result<Connection> {
        let row =
            sqlx::query("SELECT name, app, secret_box, key_id FROM connections WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StoreError::ConnectionNotFound(id.to_string()))?;
        self.open_connection(&row)
    }

    fn open_connection(&self, row: &AnyRow) -> Result<Connection> {
        let sealed: Vec<u8> = row.try_get("secret_box")?;
        let key_id: String = row.try_get("key_id")?;
        let plain = self.cipher().open(&sealed, &key_id)?;
        let settings: Map<String, Value> = serde_json::from_slice(&plain)
            .map_err(|e| StoreError::Corrupt(format!("connection settings: {e}")))?;
        Ok(Connection {
            name: row.try_get("name")?,
            app: row.try_get("app")?,
            settings,
        })
    }

    pub async fn delete_connection(&self, id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, actor) = (id.to_string(), Into::<Actor>::into(actor));
        let now = self.now_ms();
        self.write_flows(move |conn| {
                Box::pin(async move {
                    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_connections WHERE connection_id = $1")
                        .bind(id.clone())
                        .fetch_one(&mut *conn)
                        .await?;
                    if used > 0 {
                        return Err(StoreError::Conflict(format!(
                            "the connection is used by {used} flow slot(s); choose another connection there first"
                        )));
                    }
                    let n = sqlx::query("DELETE FROM connections WHERE id = $1")
                        .bind(id.clone())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::ConnectionNotFound(id));
                    }
                    audit(conn, now, &actor, "connection.delete", &id, json!({})).await
                })
            })
            .await
    }

    /// Fill a flow's connection slot with a saved connection.
    pub async fn bind_connection(
        &self,
        flow_id: &str,
        slot: &str,
        connection_id: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (flow_id, slot, connection_id, actor) = (
            flow_id.to_string(),
            slot.to_string(),
            connection_id.to_string(),
            Into::<Actor>::into(actor),
        );
        let now = self.now_ms();
        self.write_flows(move |conn| {
                Box::pin(async move {
                    crate::projects::check_visible(conn, &flow_id, &connection_id).await?;
                    sqlx::query("DELETE FROM flow_connections WHERE flow_id = $1 AND slot = $2")
                        .bind(flow_id.clone())
                        .bind(slot.clone())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO flow_connections (flow_id, slot, connection_id) VALUES ($1, $2, $3)")
                        .bind(flow_id.clone())
                        .bind(slot.clone())
                        .bind(connection_id.clone())
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, &actor, "flow.bind_connection", &flow_id, json!({ "slot": slot, "connection": connection_id })).await
                })
            })
            .await
    }

    /// The connections filling a flow's slots, decrypted: slot → connection.
    pub async fn flow_connections(&self, flow_id: &str) -> Result<HashMap<String, Connection>> {
        // Every run asks; the answer changes only when a connection or a flow's slots do.
        // This process's changes take effect at once (the generation), another process's
        // within FLOWS_FRESH.
        let cache = &self.inner.flows_cache;
        let generation = cache.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Some(found) = cache.connections.get(flow_id, generation) {
            return Ok(found);
        }
        let rows = sqlx::query(
            "SELECT fc.slot, c.name, c.app, c.secret_box, c.key_id FROM flow_connections fc \
             JOIN connections c ON c.id = fc.connection_id WHERE fc.flow_id = $1",
        )
        .bind(flow_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for row in rows {
            let slot: String = row.try_get("slot")?;
            out.insert(slot, self.open_connection(&row)?);
        }
        cache.connections.put(flow_id, generation, out.clone());
        Ok(out)
    }

    /// Run a write that changes a flow, a connection or a flow's slots. Once it is done
    /// (committed or not) the cached answers of [`Store::flow_connections`] and
    /// [`Store::flow_for_webhook`] are stale: the generation moves.
    pub(crate) async fn write_flows<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::AnyConnection,
            ) -> futures_util::future::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let written = self.inner.writer.write(f).await;
        self.inner
            .flows_cache
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        written
    }

    /// Which saved connection fills each slot of a flow: slot → connection id.
    pub async fn flow_bindings(&self, flow_id: &str) -> Result<HashMap<String, String>> {
        let rows =
            sqlx::query("SELECT slot, connection_id FROM flow_connections WHERE flow_id = $1")
                .bind(flow_id.to_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("slot")?, r.try_get("connection_id")?)))
            .collect()
    }

    /// An instance-wide setting.
    pub async fn setting(&self, key: &str) -> Result<Option<Value>> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(v.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub async fn set_setting(
        &self,
        key: &str,
        value: &Value,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (key, text, actor) = (
            key.to_string(),
            value.to_string(),
            Into::<Actor>::into(actor),
        );
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    // Settings hold no secrets (connections are named by id), so the entry
                    // shows the change itself.
                    let before: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                        .bind(key.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let before: Value = before.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
                    let after: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    sqlx::query(
                        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)                          ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(key.clone())
                    .bind(text)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    audit(conn, now, &actor, "settings.set", &key, json!({ "before": before, "after": after })).await
                })
            })
            .await
    }

    pub(crate) fn cipher(&self) -> crypto::Cipher {
        self.inner.cipher.read().expect("cipher lock").clone()
    }

    /// Re-encrypt every connection under a new master key. With a key file, the new key
    /// replaces it (the rotation survives a crash half-way: see [`crypto`]). With
    /// `FLOWBOT_SECRET_KEY`, the new key is returned and must be set there before the next
    /// start. Returns the new key (base64) and how many connections were resealed.
    pub async fn rotate_key(
        &self,
        new_key_b64: Option<String>,
        actor: impl Into<Actor>,
    ) -> Result<(String, usize)> {
        let new_b64 = new_key_b64.unwrap_or_else(MasterKey::generate);
        let next = MasterKey::from_base64(&new_b64)?;
        let key_file = self.cipher().key_file.clone();
        if let Some(file) = &key_file {
            crypto::write_key_file(&file.with_file_name(crypto::NEXT_KEY_FILE), &new_b64)?;
        }
        self.inner.cipher.write().expect("cipher lock").next = Some(next);
        let n = self.reseal_all(actor).await?;
        Ok((new_b64, n))
    }

    /// Finish a rotation that a crash interrupted (a `secret.key.next` is waiting).
    pub(crate) async fn finish_key_rotation(&self) -> Result<()> {
        if self.cipher().next.is_some() {
            tracing::info!("finishing an interrupted secret key rotation");
            self.reseal_all(Actor::from("flowbot")).await?;
        }
        Ok(())
    }

    async fn reseal_all(&self, actor: impl Into<Actor>) -> Result<usize> {
        let cipher = self.cipher();
        let Some(next) = cipher.next.clone() else {
            return Ok(0);
        };
        let actor: Actor = actor.into();
        let now = self.now_ms();
        let n = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query("SELECT id, secret_box, key_id FROM connections")
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut n = 0;
                    for row in rows {
                        let key_id: String = row.try_get("key_id")?;
                        if key_id == next.id() {
                            continue;
                        }
                        let sealed: Vec<u8> = row.try_get("secret_box")?;
                        let plain = cipher.open(&sealed, &key_id)?;
                        let id: String = row.try_get("id")?;
                        sqlx::query(
                            "UPDATE connections SET secret_box = $1, key_id = $2 WHERE id = $3",
                        )
                        .bind(next.seal(&plain))
                        .bind(next.id().to_string())
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                        n += 1;
                    }
                    // Second factors' secrets are sealed the same way.
                    let rows = sqlx::query(
                        "SELECT id, totp_box, totp_key_id FROM users WHERE totp_box IS NOT NULL",
                    )
                    .fetch_all(&mut *conn)
                    .await?;
                    for row in rows {
                        let key_id: String = row.try_get("totp_key_id")?;
                        if key_id == next.id() {
                            continue;
                        }
                        let plain =
                            cipher.open(&row.try_get::<Vec<u8>, _>("totp_box")?, &key_id)?;
                        sqlx::query(
                            "UPDATE users SET totp_box = $1, totp_key_id = $2 WHERE id = $3",
                        )
                        .bind(next.seal(&plain))
                        .bind(next.id().to_string())
                        .bind(row.try_get::<String, _>("id")?)
                        .execute(&mut *conn)
                        .await?;
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "secrets.rotate_key",
                        "connections",
                        json!({ "resealed": n }),
                    )
                    .await?;
                    Ok(n)
                })
            })
            .await?;
        // Every box now opens with the new key: it becomes the only key.
        let mut c = self.inner.cipher.write().expect("cipher lock");
        if let Some(file) = c.key_file.clone() {
            let next_file = file.with_file_name(crypto::NEXT_KEY_FILE);
            std::fs::rename(&next_file, &file).map_err(|source| StoreError::Io {
                path: next_file,
                source,
            })?;
        }
        if let Some(next) = c.next.take() {
            c.current = next;
        }
        Ok(n)
    }
}
