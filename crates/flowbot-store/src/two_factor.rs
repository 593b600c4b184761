//! Two-factor sign-in for password members: a TOTP secret (RFC 6238) kept sealed like
//! connection settings, the last time step a code was taken at (so a code works once), and
//! recovery codes kept only as SHA-256 hashes, each spent once.

use serde_json::json;
use sqlx::Row;

use crate::audit::{audit, Actor};
use crate::{Result, Store, StoreError};

/// A member's second factor.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoFactor {
    /// The shared TOTP secret.
    pub secret: Vec<u8>,
    /// Confirmed with a code: sign-ins ask for one.
    pub enabled: bool,
    /// Recovery codes not yet used.
    pub recovery_left: usize,
}

impl Store {
    /// The member's second factor, if one was set up (enabled or still to confirm).
    pub async fn two_factor(&self, user_id: &str) -> Result<Option<TwoFactor>> {
        let row = sqlx::query(
            "SELECT totp_box, totp_key_id, totp_enabled, recovery_hashes FROM users WHERE id = $1",
        )
        .bind(user_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no member {user_id}")))?;
        let sealed: Option<Vec<u8>> = row.try_get("totp_box")?;
        let key_id: Option<String> = row.try_get("totp_key_id")?;
        let (Some(sealed), Some(key_id)) = (sealed, key_id) else {
            return Ok(None);
        };
        let hashes: Vec<String> =
            serde_json::from_str(&row.try_get::<String, _>("recovery_hashes")?).unwrap_or_default();
        Ok(Some(TwoFactor {
            secret: self.cipher().open(&sealed, &key_id)?,
            enabled: row.try_get::<i64, _>("totp_enabled")? != 0,
            recovery_left: hashes.len(),
        }))
    }

    /// Keep a new secret, not yet in force: the member confirms it with a code first.
    /// Refused while a confirmed one is on (turn it off first).
    pub async fn two_factor_begin(&self, user_id: &str, secret: &[u8]) -> Result<()> {
        let (sealed, key_id) = self.cipher().seal(secret);
        let user_id = user_id.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE users SET totp_box = $1, totp_key_id = $2, totp_enabled = 0, \
                         recovery_hashes = '[]', totp_last_step = 0 WHERE id = $3 AND totp_enabled = 0",
                    )
                    .bind(sealed)
                    .bind(key_id)
                    .bind(user_id.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::Conflict(
                            "two-factor sign-in is on already: turn it off first".into(),
                        ));
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Put the confirmed secret in force, with recovery codes (their hashes) and the step
    /// of the code that confirmed it (that code is spent).
    pub async fn two_factor_enable(
        &self,
        user_id: &str,
        recovery_hashes: Vec<String>,
        step: i64,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let hashes = json!(recovery_hashes).to_string();
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE users SET totp_enabled = 1, recovery_hashes = $1, totp_last_step = $2 \
                         WHERE id = $3 AND totp_box IS NOT NULL AND totp_enabled = 0",
                    )
                    .bind(hashes)
                    .bind(step)
                    .bind(user_id.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::Conflict(
                            "set up two-factor sign-in first, or it is on already".into(),
                        ));
                    }
                    let name = crate::auth::username_of(conn, &user_id).await?;
                    audit(conn, now, &actor, "member.two_factor_on", &name, json!({})).await
                })
            })
            .await
    }

    /// Turn the second factor off (the member, or `flowbot users reset-password`).
    pub async fn two_factor_disable(&self, user_id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (user_id, actor): (String, Actor) = (user_id.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let was: i64 =
                        sqlx::query_scalar("SELECT totp_enabled FROM users WHERE id = $1")
                            .bind(user_id.clone())
                            .fetch_optional(&mut *conn)
                            .await?
                            .ok_or_else(|| StoreError::NotFound(format!("no member {user_id}")))?;
                    sqlx::query(
                        "UPDATE users SET totp_box = NULL, totp_key_id = NULL, totp_enabled = 0, \
                         recovery_hashes = '[]' WHERE id = $1",
                    )
                    .bind(user_id.clone())
                    .execute(&mut *conn)
                    .await?;
                    if was != 0 {
                        let name = crate::auth::username_of(conn, &user_id).await?;
                        audit(conn, now, &actor, "member.two_factor_off", &name, json!({})).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Take the code of time step `step`: true only when no code of this or a later step
    /// was taken before (a code seen twice is refused the second time).
    pub async fn two_factor_take_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let user_id = user_id.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
                    )
                    .bind(step)
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                        == 1)
                })
            })
            .await
    }

    /// Spend the recovery code with this hash: true when it was one not used yet.
    pub async fn two_factor_use_recovery(
        &self,
        user_id: &str,
        hash: &str,
        actor: impl Into<Actor>,
    ) -> Result<bool> {
        let (user_id, hash, actor): (String, String, Actor) =
            (user_id.to_string(), hash.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let text: Option<String> = sqlx::query_scalar(
                        "SELECT recovery_hashes FROM users WHERE id = $1 AND totp_enabled = 1",
                    )
                    .bind(user_id.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                    let mut hashes: Vec<String> = text
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    let before = json!(hashes).to_string();
                    let count = hashes.len();
                    hashes.retain(|h| *h != hash);
                    if hashes.len() == count {
                        return Ok(false);
                    }
                    // Only if nobody spent a code meanwhile (another server, at once): a
                    // code works once.
                    let n = sqlx::query(
                        "UPDATE users SET recovery_hashes = $1 WHERE id = $2 AND recovery_hashes = $3",
                    )
                    .bind(json!(hashes).to_string())
                    .bind(user_id.clone())
                    .bind(before)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Ok(false);
                    }
                    let name = crate::auth::username_of(conn, &user_id).await?;
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.recovery_code_used",
                        &name,
                        json!({ "left": hashes.len() }),
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await
    }
}
