//! Projects (Yoom's プロジェクト): flows and connections belong to one. A connection is
//! private to its project unless shared with named others, and a flow may only use the
//! connections its project sees — checked when a slot is bound, when a flow moves, and
//! when a share is withdrawn. A member may have a role of their own in a project; without
//! one, their workspace role applies.
//!
//! **Invariant:** every connection a flow is bound to is visible in the flow's project.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, Row};

use crate::audit::{audit, Actor};
use crate::{new_id, Result, Role, Store, StoreError};

/// The project everything belongs to until others are made.
pub const DEFAULT_PROJECT: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub flows: i64,
    pub connections: i64,
}

/// A member's own role in a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProjectRole {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

/// Refuse a project that does not exist.
pub(crate) async fn check_project(conn: &mut AnyConnection, project: &str) -> Result<()> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
        .bind(project.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("no project `{project}`")))
}

/// Whether the connection may be used in `project`: its own, or shared with it.
async fn visible(conn: &mut AnyConnection, connection_id: &str, project: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM connections c WHERE c.id = $1 AND (c.project_id = $2 OR EXISTS \
         (SELECT 1 FROM connection_shares s WHERE s.connection_id = c.id AND s.project_id = $2))",
    )
    .bind(connection_id.to_string())
    .bind(project.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// Refuse binding a flow's slot to a connection its project does not see.
pub(crate) async fn check_visible(
    conn: &mut AnyConnection,
    flow_id: &str,
    connection_id: &str,
) -> Result<()> {
    let project: String = sqlx::query_scalar("SELECT project_id FROM flows WHERE id = $1")
        .bind(flow_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::FlowNotFound(flow_id.to_string()))?;
    if !visible(conn, connection_id, &project).await? {
        return Err(StoreError::Conflict(format!(
            "the connection is not in project `{project}` nor shared with it: share it there first"
        )));
    }
    Ok(())
}

impl Store {
    /// Every project with how many flows and connections it holds, by name.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.created_at, \
             (SELECT COUNT(*) FROM flows f WHERE f.project_id = p.id) AS flows, \
             (SELECT COUNT(*) FROM connections c WHERE c.project_id = p.id) AS connections \
             FROM projects p ORDER BY p.name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Project {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    flows: r.try_get("flows")?,
                    connections: r.try_get("connections")?,
                })
            })
            .collect()
    }

    /// Every project's id and name, by name: what every page and filtered list needs,
    /// without counting their flows and connections.
    pub async fn project_names(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, name FROM projects ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    pub async fn create_project(&self, name: &str, actor: impl Into<Actor>) -> Result<Project> {
        let (name, actor): (String, Actor) = (name.to_string(), actor.into());
        let now = self.now_ms();
        let id = new_id();
        let p = Project {
            id: id.clone(),
            name: name.clone(),
            created_at: now,
            flows: 0,
            connections: 0,
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
                            .bind(name.clone())
                            .fetch_optional(&mut *conn)
                            .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "a project named `{name}` exists already"
                        )));
                    }
                    sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
                        .bind(id.clone())
                        .bind(name.clone())
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "project.create",
                        &name,
                        json!({ "id": id }),
                    )
                    .await
                })
            })
            .await?;
        Ok(p)
    }

    pub async fn rename_project(
        &self,
        id: &str,
        name: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (id, name, actor): (String, String, Actor) =
            (id.to_string(), name.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let before: String =
                        sqlx::query_scalar("SELECT name FROM projects WHERE id = $1")
                            .bind(id.clone())
                            .fetch_optional(&mut *conn)
                            .await?
                            .ok_or_else(|| StoreError::NotFound(format!("no project `{id}`")))?;
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT id FROM projects WHERE name = $1 AND id <> $2")
                            .bind(name.clone())
                            .bind(id.clone())
                            .fetch_optional(&mut *conn)
                            .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "a project named `{name}` exists already"
                        )));
                    }
                    sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
                        .bind(name.clone())
                        .bind(id.clone())
                        .execute(&mut *conn)
                        .await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "project.rename",
                        &id,
                        json!({ "before": before, "after": name }),
                    )
                    .await
                })
            })
            .await
    }

    /// Remove an empty project (never the default one).
    pub async fn delete_project(&self, id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, actor): (String, Actor) = (id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    if id == DEFAULT_PROJECT {
                        return Err(StoreError::Conflict("the default project stays".into()));
                    }
                    check_project(conn, &id).await?;
                    let held: i64 = sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM flows WHERE project_id = $1) + \
                         (SELECT COUNT(*) FROM connections WHERE project_id = $1) + \
                         (SELECT COUNT(*) FROM data_tables WHERE project_id = $1)",
                    )
                    .bind(id.clone())
                    .fetch_one(&mut *conn)
                    .await?;
                    if held > 0 {
                        return Err(StoreError::Conflict(
                            "the project still holds flows, connections or tables: move or delete them first"
                                .into(),
                        ));
                    }
                    for sql in [
                        "DELETE FROM connection_shares WHERE project_id = $1",
                        "DELETE FROM project_members WHERE project_id = $1",
                        "DELETE FROM projects WHERE id = $1",
                    ] {
                        sqlx::query(sql).bind(id.clone()).execute(&mut *conn).await?;
                    }
                    audit(conn, now, &actor, "project.delete", &id, json!({})).await
                })
            })
            .await
    }

    /// Move a flow to another project; its versions, runs and history go with it. Refused
    /// while it uses a connection the target project does not see.
    pub async fn move_flow(
        &self,
        flow_id: &str,
        project: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (flow_id, project, actor): (String, String, Actor) =
            (flow_id.to_string(), project.to_string(), actor.into());
        let now = self.now_ms();
        self.write_flows(move |conn| {
            Box::pin(async move {
                check_project(conn, &project).await?;
                let before: String = sqlx::query_scalar("SELECT project_id FROM flows WHERE id = $1")
                    .bind(flow_id.clone())
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| StoreError::FlowNotFound(flow_id.clone()))?;
                let bound: Vec<String> =
                    sqlx::query_scalar("SELECT connection_id FROM flow_connections WHERE flow_id = $1")
                        .bind(flow_id.clone())
                        .fetch_all(&mut *conn)
                        .await?;
                let mut unseen = Vec::new();
                for c in bound {
                    if !visible(conn, &c, &project).await? {
                        let name: Option<String> =
                            sqlx::query_scalar("SELECT name FROM connections WHERE id = $1")
                                .bind(c.clone())
                                .fetch_optional(&mut *conn)
                                .await?;
                        unseen.push(name.unwrap_or(c));
                    }
                }
                if !unseen.is_empty() {
                    return Err(StoreError::Conflict(format!(
                        "the flow uses connections the target project does not see: {} (share them there first)",
                        unseen.join(", ")
                    )));
                }
                sqlx::query("UPDATE flows SET project_id = $1, updated_at = $2 WHERE id = $3")
                    .bind(project.clone())
                    .bind(now)
                    .bind(flow_id.clone())
                    .execute(&mut *conn)
                    .await?;
                audit(conn, now, &actor, "flow.move", &flow_id, json!({ "before": before, "after": project })).await
            })
        })
        .await
    }

    /// Share a connection with exactly these other projects. Withdrawing a share is refused
    /// while a flow of that project uses the connection.
    pub async fn share_connection(
        &self,
        connection_id: &str,
        projects: &[String],
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (cid, wanted, actor): (String, Vec<String>, Actor) =
            (connection_id.to_string(), projects.to_vec(), actor.into());
        let now = self.now_ms();
        self.write_flows(move |conn| {
            Box::pin(async move {
                let row = sqlx::query("SELECT name, project_id FROM connections WHERE id = $1")
                    .bind(cid.clone())
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| StoreError::ConnectionNotFound(cid.clone()))?;
                let (name, home): (String, String) = (row.try_get("name")?, row.try_get("project_id")?);
                let before: Vec<String> = sqlx::query_scalar(
                    "SELECT project_id FROM connection_shares WHERE connection_id = $1 ORDER BY project_id",
                )
                .bind(cid.clone())
                .fetch_all(&mut *conn)
                .await?;
                for p in &wanted {
                    check_project(conn, p).await?;
                }
                for gone in before.iter().filter(|p| !wanted.contains(p)) {
                    let users: Vec<String> = sqlx::query_scalar(
                        "SELECT f.id FROM flow_connections b JOIN flows f ON f.id = b.flow_id \
                         WHERE b.connection_id = $1 AND f.project_id = $2",
                    )
                    .bind(cid.clone())
                    .bind(gone.clone())
                    .fetch_all(&mut *conn)
                    .await?;
                    if !users.is_empty() {
                        return Err(StoreError::Conflict(format!(
                            "flows of that project use the connection: {}",
                            users.join(", ")
                        )));
                    }
                }
                sqlx::query("DELETE FROM connection_shares WHERE connection_id = $1")
                    .bind(cid.clone())
                    .execute(&mut *conn)
                    .await?;
                let mut after: Vec<String> = wanted.into_iter().filter(|p| *p != home).collect();
                after.sort();
                after.dedup();
                for p in &after {
                    sqlx::query("INSERT INTO connection_shares (connection_id, project_id) VALUES ($1, $2)")
                        .bind(cid.clone())
                        .bind(p.clone())
                        .execute(&mut *conn)
                        .await?;
                }
                audit(conn, now, &actor, "connection.share", &name, json!({ "before": before, "after": after })).await
            })
        })
        .await
    }

    /// Give a member a role of their own in a project, or (None) let their workspace role
    /// apply there again.
    pub async fn set_project_role(
        &self,
        project: &str,
        user_id: &str,
        role: Option<Role>,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (project, user_id, actor): (String, String, Actor) =
            (project.to_string(), user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    check_project(conn, &project).await?;
                    let name = crate::auth::username_of(conn, &user_id).await?;
                    sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
                        .bind(project.clone())
                        .bind(user_id.clone())
                        .execute(&mut *conn)
                        .await?;
                    if let Some(r) = role {
                        sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)")
                            .bind(project.clone())
                            .bind(user_id.clone())
                            .bind(r.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                    audit(conn, now, &actor, "project.member_role", &name, json!({ "project": project, "role": role })).await
                })
            })
            .await
    }

    /// The members with a role of their own in a project.
    pub async fn project_roles_in(&self, project: &str) -> Result<Vec<ProjectRole>> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.username, m.role FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY u.username",
        )
        .bind(project.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ProjectRole {
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    role: Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Viewer),
                })
            })
            .collect()
    }

    /// A member's own roles, by project.
    pub async fn project_roles_of(&self, user_id: &str) -> Result<HashMap<String, Role>> {
        let rows = sqlx::query("SELECT project_id, role FROM project_members WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("project_id")?,
                    Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Viewer),
                ))
            })
            .collect()
    }

    /// The project a flow, a connection or a run belongs to (None: no such thing).
    pub async fn project_of(&self, kind: ProjectOf, id: &str) -> Result<Option<String>> {
        let sql = match kind {
            ProjectOf::Flow => "SELECT project_id FROM flows WHERE id = $1",
            ProjectOf::Connection => "SELECT project_id FROM connections WHERE id = $1",
            ProjectOf::Table => "SELECT project_id FROM data_tables WHERE id = $1",
            ProjectOf::Run => {
                "SELECT f.project_id FROM runs r JOIN flows f ON f.id = r.flow_id WHERE r.id = $1"
            }
        };
        Ok(sqlx::query_scalar(sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?)
    }
}

/// What an id names, to find its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectOf {
    Flow,
    Connection,
    Run,
    Table,
}
