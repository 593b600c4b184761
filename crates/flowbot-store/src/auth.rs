//! Members (users with a role in the workspace), login sessions, API tokens and
//! invitations. The store keeps only hashes: argon2 for passwords (computed by the
//! server), SHA-256 for session, API and invitation tokens (random 256-bit values, so a
//! fast hash is enough and lookups stay cheap).
//!
//! **Invariant:** the workspace always has an active owner: the last one cannot be
//! demoted, disabled or removed. **Invariant:** a disabled or removed member has no
//! session (they end in the same transaction) and their tokens answer nothing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::{audit, Actor};
use crate::{new_id, Result, Store, StoreError};

/// A member's role in the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including members, settings and transferring ownership.
    Owner,
    /// Everything but transferring ownership.
    Admin,
    /// Builds and runs flows, uses connections.
    Editor,
    /// Reads flows and runs; no secrets, no changes.
    Viewer,
    /// Only their own tasks and the runs they may see.
    Operator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Viewer,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// `ja`, `en`, or empty for the browser's language.
    pub language: String,
    /// An IANA time zone name, e.g. `Asia/Tokyo`.
    pub time_zone: String,
    pub role: Role,
}

/// A member as the members page lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Member {
    #[serde(flatten)]
    pub user: User,
    pub disabled: bool,
    pub created_at: i64,
}

/// What a new member is given.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub display_name: String,
    pub email: String,
    pub language: String,
    pub time_zone: String,
    /// The subject at the identity provider, for a member made by single sign-on.
    pub oidc_subject: Option<String>,
    /// The email is known to be theirs (set by an invitation, an admin, the command line
    /// or the identity provider), so a first sign-in through the provider may link to it.
    pub email_verified: bool,
}

impl NewUser {
    /// A member with only a name, a password and a role (the rest defaulted).
    pub fn basic(username: &str, password_hash: &str, role: Role) -> NewUser {
        NewUser {
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            role,
            display_name: username.to_string(),
            email: String::new(),
            language: String::new(),
            time_zone: "Asia/Tokyo".into(),
            oidc_subject: None,
            email_verified: false,
        }
    }
}

/// The profile fields a member changes themselves (None: unchanged).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    /// The token calls only GET routes, whatever its user's role.
    pub read_only: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// The user name of who sent it.
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.email, u.language, u.time_zone, u.role";

fn user_from(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        language: r.try_get("language")?,
        time_zone: r.try_get("time_zone")?,
        role: Role::parse(&role).ok_or_else(|| {
            StoreError::InvalidConfig(format!("a member has an unknown role `{role}`"))
        })?,
    })
}

fn invitation_from(r: &AnyRow) -> Result<Invitation> {
    let role: String = r.try_get("role")?;
    Ok(Invitation {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        invited_by: r.try_get("invited_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

async fn user_by_id(conn: &mut AnyConnection, id: &str) -> Result<(User, bool)> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, u.disabled_at FROM users u WHERE u.id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("no member {id}")))?;
    let disabled: Option<i64> = row.try_get("disabled_at")?;
    Ok((user_from(&row)?, disabled.is_some()))
}

/// Refuse a change that would leave the workspace without an active owner.
async fn keep_an_owner(conn: &mut AnyConnection, losing: &User) -> Result<()> {
    if losing.role != Role::Owner {
        return Ok(());
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE role = 'owner' AND disabled_at IS NULL AND id <> $1",
    )
    .bind(losing.id.clone())
    .fetch_one(&mut *conn)
    .await?;
    if others == 0 {
        return Err(StoreError::Conflict(format!(
            "`{}` is the only owner: make another member owner first",
            losing.username
        )));
    }
    Ok(())
}

/// A member's user name, by id (for what the audit log names).
pub(crate) async fn username_of(conn: &mut AnyConnection, user_id: &str) -> Result<String> {
    sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(user_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no member {user_id}")))
}

async fn end_sessions(conn: &mut AnyConnection, user_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_user(conn: &mut AnyConnection, id: &str, u: &NewUser, now: i64) -> Result<()> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(u.username.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "a member named `{}` already exists",
            u.username
        )));
    }
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, created_at, display_name, email, language, time_zone, role, oidc_subject, email_verified) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.to_string())
    .bind(u.username.clone())
    .bind(u.password_hash.clone())
    .bind(now)
    .bind(u.display_name.clone())
    .bind(u.email.clone())
    .bind(u.language.clone())
    .bind(u.time_zone.clone())
    .bind(u.role.as_str())
    .bind(u.oidc_subject.clone())
    .bind(i64::from(u.email_verified && !u.email.is_empty()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn create_user(&self, new: NewUser, actor: impl Into<Actor>) -> Result<User> {
        let actor: Actor = actor.into();
        let now = self.now_ms();
        let id = new_id();
        let user = User {
            id: id.clone(),
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            email: new.email.clone(),
            language: new.language.clone(),
            time_zone: new.time_zone.clone(),
            role: new.role,
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    insert_user(conn, &id, &new, now).await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.add",
                        &new.username,
                        json!({ "role": new.role }),
                    )
                    .await
                })
            })
            .await?;
        Ok(user)
    }

    /// Every member, oldest first.
    pub async fn members(&self) -> Result<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.disabled_at, u.created_at FROM users u ORDER BY u.created_at, u.username"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user: user_from(r)?,
                    disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// A member by id or by user name.
    pub async fn member(&self, id_or_name: &str) -> Result<Member> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.disabled_at, u.created_at FROM users u WHERE u.id = $1 OR u.username = $1"
        ))
        .bind(id_or_name.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no member `{id_or_name}`")))?;
        Ok(Member {
            user: user_from(&row)?,
            disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            created_at: row.try_get("created_at")?,
        })
    }

    /// An active member and their password hash, to check a sign-in. A disabled member
    /// is not found.
    pub async fn user_for_login(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = $1 AND u.disabled_at IS NULL"
        ))
        .bind(username.to_string())
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some((user_from(&r)?, r.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    /// Change a member's role. Making someone owner is a transfer: see
    /// [`Store::transfer_ownership`].
    pub async fn set_role(
        &self,
        user_id: &str,
        role: Role,
        actor: impl Into<Actor>,
    ) -> Result<User> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (user, _) = user_by_id(conn, &user_id).await?;
                    if user.role != role {
                        keep_an_owner(conn, &user).await?;
                        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                            .bind(role.as_str())
                            .bind(user_id.clone())
                            .execute(&mut *conn)
                            .await?;
                        audit(
                            conn,
                            now,
                            &actor,
                            "member.role",
                            &user.username,
                            json!({ "before": user.role, "after": role }),
                        )
                        .await?;
                    }
                    Ok(User { role, ..user })
                })
            })
            .await
    }

    /// Make `to` an owner and `from` (an owner) an admin, in one transaction.
    pub async fn transfer_ownership(
        &self,
        from: &str,
        to: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (from, to, actor): (String, String, Actor) =
            (from.to_string(), to.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (giver, _) = user_by_id(conn, &from).await?;
                    let (taker, disabled) = user_by_id(conn, &to).await?;
                    if giver.role != Role::Owner {
                        return Err(StoreError::Conflict(format!("`{}` is not an owner", giver.username)));
                    }
                    if disabled {
                        return Err(StoreError::Conflict(format!("`{}` is disabled", taker.username)));
                    }
                    if giver.id == taker.id {
                        return Ok(());
                    }
                    for (id, role) in [(&taker.id, Role::Owner), (&giver.id, Role::Admin)] {
                        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                            .bind(role.as_str())
                            .bind(id.clone())
                            .execute(&mut *conn)
                            .await?;
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.transfer_ownership",
                        &taker.username,
                        json!({ "from": giver.username, "before": taker.role, "after": Role::Owner }),
                    )
                    .await
                })
            })
            .await
    }

    /// Disable (or enable again) a member. Disabling ends their sessions at once.
    pub async fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (user, was) = user_by_id(conn, &user_id).await?;
                    if disabled {
                        keep_an_owner(conn, &user).await?;
                        end_sessions(conn, &user_id).await?;
                    }
                    if was != disabled {
                        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                            .bind(disabled.then_some(now))
                            .bind(user_id.clone())
                            .execute(&mut *conn)
                            .await?;
                        let action = if disabled {
                            "member.disable"
                        } else {
                            "member.enable"
                        };
                        audit(conn, now, &actor, action, &user.username, json!({})).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Remove a member: their sessions and tokens go with them. Their flows, versions and
    /// audit entries stay (they name the user, not the row).
    pub async fn remove_user(&self, user_id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (user, _) = user_by_id(conn, &user_id).await?;
                    keep_an_owner(conn, &user).await?;
                    for sql in [
                        "DELETE FROM sessions WHERE user_id = $1",
                        "DELETE FROM api_tokens WHERE user_id = $1",
                        "DELETE FROM users WHERE id = $1",
                    ] {
                        sqlx::query(sql)
                            .bind(user_id.clone())
                            .execute(&mut *conn)
                            .await?;
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.remove",
                        &user.username,
                        json!({ "role": user.role }),
                    )
                    .await
                })
            })
            .await
    }

    /// A new password (by the member, an admin, or `flowbot users reset-password`). Every
    /// session of the member ends: whoever knew the old password is signed out.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user_id, hash, actor): (String, String, Actor) =
            (user_id.to_string(), password_hash.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (user, _) = user_by_id(conn, &user_id).await?;
                    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                        .bind(hash)
                        .bind(user_id.clone())
                        .execute(&mut *conn)
                        .await?;
                    end_sessions(conn, &user_id).await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.password",
                        &user.username,
                        json!({}),
                    )
                    .await
                })
            })
            .await
    }

    /// Change a member's own profile fields.
    pub async fn update_profile(
        &self,
        user_id: &str,
        p: Profile,
        actor: impl Into<Actor>,
    ) -> Result<User> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let (user, _) = user_by_id(conn, &user_id).await?;
                    let next = User {
                        display_name: p.display_name.unwrap_or(user.display_name.clone()),
                        email: p.email.unwrap_or(user.email.clone()),
                        language: p.language.unwrap_or(user.language.clone()),
                        time_zone: p.time_zone.unwrap_or(user.time_zone.clone()),
                        ..user.clone()
                    };
                    // An email the member typed themselves is not known to be theirs.
                    sqlx::query("UPDATE users SET display_name = $1, email = $2, language = $3, time_zone = $4, \
                                 email_verified = CASE WHEN email = $2 THEN email_verified ELSE 0 END WHERE id = $5")
                        .bind(next.display_name.clone())
                        .bind(next.email.clone())
                        .bind(next.language.clone())
                        .bind(next.time_zone.clone())
                        .bind(user_id.clone())
                        .execute(&mut *conn)
                        .await?;
                    let mut changed = serde_json::Map::new();
                    for (field, before, after) in [
                        ("display_name", &user.display_name, &next.display_name),
                        ("email", &user.email, &next.email),
                        ("language", &user.language, &next.language),
                        ("time_zone", &user.time_zone, &next.time_zone),
                    ] {
                        if before != after {
                            changed.insert(field.into(), json!({ "before": before, "after": after }));
                        }
                    }
                    if !changed.is_empty() {
                        audit(conn, now, &actor, "member.profile", &user.username, changed.into()).await?;
                    }
                    Ok(next)
                })
            })
            .await
    }

    pub async fn create_session(
        &self,
        user_id: &str,
        token_hash: &str,
        csrf: &str,
        ttl_ms: i64,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user_id, token_hash, csrf, actor): (String, String, String, Actor) = (
            user_id.to_string(),
            token_hash.to_string(),
            csrf.to_string(),
            actor.into(),
        );
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    // Old sessions go as new ones come, so the table stays small.
                    sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(token_hash)
                        .bind(user_id)
                        .bind(csrf)
                        .bind(now)
                        .bind(now + ttl_ms)
                        .execute(&mut *conn)
                        .await?;
                    let name = actor.name.clone();
                    audit(conn, now, &actor, "session.sign_in", &name, json!({})).await
                })
            })
            .await
    }

    /// The live session with this token hash, of an active member.
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionInfo>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
        ))
        .bind(token_hash.to_string())
        .bind(self.now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(SessionInfo {
                user: user_from(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: r.try_get("expires_at")?,
            }),
            None => None,
        })
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let token_hash = token_hash.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn create_api_token(
        &self,
        user: &User,
        name: &str,
        read_only: bool,
        token_hash: &str,
        actor: impl Into<Actor>,
    ) -> Result<ApiTokenInfo> {
        let (user, name, token_hash, actor): (User, String, String, Actor) = (
            user.clone(),
            name.to_string(),
            token_hash.to_string(),
            actor.into(),
        );
        let now = self.now_ms();
        let id = new_id();
        let info = ApiTokenInfo {
            id: id.clone(),
            name: name.clone(),
            read_only,
            created_at: now,
            last_used_at: None,
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO api_tokens (id, name, token_hash, user_id, created_at, read_only) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(id)
                        .bind(name.clone())
                        .bind(token_hash)
                        .bind(user.id.clone())
                        .bind(now)
                        .bind(i64::from(read_only))
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, &actor, "api_token.create", &name, json!({ "read_only": read_only, "user": user.username })).await
                })
            })
            .await?;
        Ok(info)
    }

    /// The active member an API token belongs to, and whether the token is read-only.
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<(User, bool)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, t.read_only FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND u.disabled_at IS NULL"
        ))
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some((
                user_from(&r)?,
                r.try_get::<i64, _>("read_only")? != 0,
            ))),
            None => Ok(None),
        }
    }

    pub async fn api_tokens(&self, user_id: &str) -> Result<Vec<ApiTokenInfo>> {
        let rows = sqlx::query("SELECT id, name, read_only, created_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at")
            .bind(user_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiTokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    read_only: r.try_get::<i64, _>("read_only")? != 0,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    pub async fn delete_api_token(
        &self,
        user: &User,
        id: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user, id, actor): (User, String, Actor) = (user.clone(), id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                        .bind(id.clone())
                        .bind(user.id.clone())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound(format!("no API token {id}")));
                    }
                    audit(conn, now, &actor, "api_token.delete", &id, json!({})).await
                })
            })
            .await
    }

    /// Invite someone by email to a role; only the token's hash is kept.
    pub async fn create_invitation(
        &self,
        email: &str,
        role: Role,
        token_hash: &str,
        ttl_ms: i64,
        actor: impl Into<Actor>,
    ) -> Result<Invitation> {
        let actor: Actor = actor.into();
        let now = self.now_ms();
        let inv = Invitation {
            id: new_id(),
            email: email.to_string(),
            role,
            invited_by: actor.name.clone(),
            created_at: now,
            expires_at: now + ttl_ms,
        };
        let (i, hash) = (inv.clone(), token_hash.to_string());
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO invitations (id, email, role, token_hash, invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(i.id.clone())
                        .bind(i.email.clone())
                        .bind(i.role.as_str())
                        .bind(hash)
                        .bind(i.invited_by.clone())
                        .bind(i.created_at)
                        .bind(i.expires_at)
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, &actor, "member.invite", &i.email, json!({ "role": i.role })).await
                })
            })
            .await?;
        Ok(inv)
    }

    /// Invitations not yet accepted nor expired, newest first.
    pub async fn invitations(&self) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(
            "SELECT id, email, role, invited_by, created_at, expires_at FROM invitations \
             WHERE accepted_at IS NULL AND expires_at > $1 ORDER BY created_at DESC",
        )
        .bind(self.now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(invitation_from).collect()
    }

    /// The open invitation a link's token names.
    pub async fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>> {
        let row = sqlx::query(
            "SELECT id, email, role, invited_by, created_at, expires_at FROM invitations \
             WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_string())
        .bind(self.now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(invitation_from).transpose()
    }

    pub async fn delete_invitation(&self, id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, actor): (String, Actor) = (id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let email: Option<String> = sqlx::query_scalar(
                        "SELECT email FROM invitations WHERE id = $1 AND accepted_at IS NULL",
                    )
                    .bind(id.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                    let email = email
                        .ok_or_else(|| StoreError::NotFound(format!("no open invitation {id}")))?;
                    sqlx::query("DELETE FROM invitations WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.invitation_revoke",
                        &email,
                        json!({}),
                    )
                    .await
                })
            })
            .await
    }

    /// Accept an invitation: the member is created with its email and role, and the link
    /// is spent, in one transaction (a link used twice at once makes one member).
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        mut new: NewUser,
        address: &str,
    ) -> Result<User> {
        let (hash, address) = (token_hash.to_string(), address.to_string());
        let now = self.now_ms();
        let id = new_id();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query("SELECT id, email, role FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2")
                        .bind(hash.clone())
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await?
                        .ok_or_else(|| StoreError::NotFound("this invitation link is used, expired or revoked".into()))?;
                    let inv_id: String = row.try_get("id")?;
                    // The link went to this address: it is theirs.
                    new.email = row.try_get("email")?;
                    new.email_verified = true;
                    new.role = Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Viewer);
                    let n = sqlx::query("UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 AND accepted_at IS NULL")
                        .bind(now)
                        .bind(id.clone())
                        .bind(inv_id)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::Conflict("this invitation link was used already".into()));
                    }
                    insert_user(conn, &id, &new, now).await?;
                    let actor = Actor::new(new.username.clone(), address);
                    audit(conn, now, &actor, "member.join", &new.username, json!({ "role": new.role, "email": new.email })).await?;
                    Ok(User {
                        id,
                        username: new.username,
                        display_name: new.display_name,
                        email: new.email,
                        language: new.language,
                        time_zone: new.time_zone,
                        role: new.role,
                    })
                })
            })
            .await
    }
}
