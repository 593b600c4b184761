//! Users, login sessions and API tokens. The store keeps only hashes: argon2 for passwords
//! (computed by the server), SHA-256 for session and API tokens (random 256-bit values, so
//! a fast hash is enough and lookups stay cheap).

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::flows::audit;
use crate::{new_id, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    pub id: String,
    pub username: String,
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
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn create_user(&self, username: &str, password_hash: &str) -> Result<User> {
        let (username, hash) = (username.to_string(), password_hash.to_string());
        let now = self.now_ms();
        let id = new_id();
        let user = User {
            id: id.clone(),
            username: username.clone(),
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                        .bind(username.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                    if exists.is_some() {
                        return Err(StoreError::Conflict(format!("a user named `{username}` already exists")));
                    }
                    sqlx::query("INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(username.clone())
                        .bind(hash)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, "flowbot", "user.create", &username, json!({})).await
                })
            })
            .await?;
        Ok(user)
    }

    /// A user and their password hash, to check a login.
    pub async fn user_for_login(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query("SELECT id, username, password_hash FROM users WHERE username = $1")
            .bind(username.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some((
                User {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                },
                r.try_get("password_hash")?,
            )),
            None => None,
        })
    }

    pub async fn create_session(
        &self,
        user_id: &str,
        token_hash: &str,
        csrf: &str,
        ttl_ms: i64,
    ) -> Result<()> {
        let (user_id, token_hash, csrf) = (
            user_id.to_string(),
            token_hash.to_string(),
            csrf.to_string(),
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
                    Ok(())
                })
            })
            .await
    }

    /// The live session with this token hash.
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionInfo>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, s.csrf_token, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash.to_string())
        .bind(self.now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(SessionInfo {
                user: User {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                },
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
        token_hash: &str,
    ) -> Result<ApiTokenInfo> {
        let (user, name, token_hash) = (user.clone(), name.to_string(), token_hash.to_string());
        let now = self.now_ms();
        let id = new_id();
        let info = ApiTokenInfo {
            id: id.clone(),
            name: name.clone(),
            created_at: now,
            last_used_at: None,
        };
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO api_tokens (id, name, token_hash, user_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(id)
                        .bind(name.clone())
                        .bind(token_hash)
                        .bind(user.id.clone())
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, &user.username, "api_token.create", &name, json!({})).await
                })
            })
            .await?;
        Ok(info)
    }

    /// The user an API token belongs to.
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(User {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
            }),
            None => None,
        })
    }

    pub async fn api_tokens(&self, user_id: &str) -> Result<Vec<ApiTokenInfo>> {
        let rows = sqlx::query("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at")
            .bind(user_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiTokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    pub async fn delete_api_token(&self, user: &User, id: &str) -> Result<()> {
        let (user, id) = (user.clone(), id.to_string());
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
                    audit(
                        conn,
                        now,
                        &user.username,
                        "api_token.delete",
                        &id,
                        json!({}),
                    )
                    .await
                })
            })
            .await
    }
}
