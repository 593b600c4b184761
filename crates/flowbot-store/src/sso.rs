//! Single sign-on's state: a sign-in under way (its PKCE verifier sealed, its nonce, where
//! to go back, the invitation it accepts), kept in the database so the identity provider's
//! callback may land on any server; and members linked to their subject at the identity
//! provider.

use sqlx::Row;

use crate::audit::{audit, Actor};
use crate::{Result, Store};

/// How long a sign-in may take from leaving for the identity provider to its callback.
const SSO_TTL_MS: i64 = 10 * 60 * 1000;

/// A sign-in through the identity provider under way, keyed by its `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSso {
    /// The PKCE verifier: stored sealed.
    pub verifier: String,
    pub nonce: String,
    /// The page to land on after signing in (a path on this server).
    pub return_to: String,
    /// The SHA-256 of the invitation link's token this sign-in accepts, if any.
    pub invitation: Option<String>,
    /// The SHA-256 of the value the starting browser holds in a cookie.
    pub browser: String,
}

impl Store {
    /// Remember a sign-in until its callback (or for ten minutes).
    pub async fn sso_begin(&self, state: &str, p: &PendingSso) -> Result<()> {
        let (sealed, key_id) = self.cipher().seal(p.verifier.as_bytes());
        let (state, p) = (state.to_string(), p.clone());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM sso_pending WHERE created_at < $1")
                        .bind(now - SSO_TTL_MS)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(
                        "INSERT INTO sso_pending (state, verifier_box, key_id, nonce, return_to, invitation, created_at, browser) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(state)
                    .bind(sealed)
                    .bind(key_id)
                    .bind(p.nonce)
                    .bind(p.return_to)
                    .bind(p.invitation)
                    .bind(now)
                    .bind(p.browser)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The sign-in `state` stands for, taken once: a replayed or late callback finds
    /// nothing.
    pub async fn sso_take(&self, state: &str) -> Result<Option<PendingSso>> {
        let Some(row) = self
            .take_once(
                "sso_pending",
                "verifier_box, key_id, nonce, return_to, invitation, created_at, browser",
                state,
                SSO_TTL_MS,
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(PendingSso {
            verifier: self.open_verifier(&row)?,
            nonce: row.try_get("nonce")?,
            return_to: row.try_get("return_to")?,
            invitation: row.try_get("invitation")?,
            browser: row.try_get("browser")?,
        }))
    }

    /// The member linked to this subject at the identity provider, if any (whether
    /// disabled or not: the caller decides).
    pub async fn member_by_subject(&self, subject: &str) -> Result<Option<crate::Member>> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE oidc_subject = $1")
            .bind(subject.to_string())
            .fetch_optional(self.pool())
            .await?;
        match id {
            Some(id) => Ok(Some(self.member(&id).await?)),
            None => Ok(None),
        }
    }

    /// The member not yet linked to the identity provider whose email, known to be theirs,
    /// is this one (in any case), if exactly one is.
    pub async fn member_by_email(&self, email: &str) -> Result<Option<crate::Member>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE LOWER(email) = LOWER($1) AND email <> '' \
             AND email_verified = 1 AND oidc_subject IS NULL",
        )
        .bind(email.to_string())
        .fetch_all(self.pool())
        .await?;
        match ids.as_slice() {
            [id] => Ok(Some(self.member(id).await?)),
            _ => Ok(None),
        }
    }

    /// Link a member to their subject at the identity provider (their next sign-ins find
    /// them by it, whatever their email becomes).
    pub async fn link_subject(
        &self,
        user_id: &str,
        subject: &str,
        actor: impl Into<Actor>,
    ) -> Result<()> {
        let (user_id, subject, actor): (String, String, Actor) =
            (user_id.to_string(), subject.to_string(), actor.into());
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let name = crate::auth::username_of(conn, &user_id).await?;
                    // A member linked once stays linked to that subject.
                    let n = sqlx::query(
                        "UPDATE users SET oidc_subject = $1 WHERE id = $2 AND oidc_subject IS NULL",
                    )
                    .bind(subject)
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(crate::StoreError::Conflict(format!(
                            "`{name}` is linked to another account at the identity provider"
                        )));
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "member.sso_link",
                        &name,
                        serde_json::json!({}),
                    )
                    .await
                })
            })
            .await
    }
}
