//! Signing in (client credentials, JWT bearer, refresh token) and the session cached per
//! connection.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use flowbot_core::{ActionError, Connection};
use reqwest::Method;
use serde_json::Value;

use super::*;
use crate::http::{retry_after, transport_error};

/// How long a describe answer is reused.
pub(super) const DESCRIBE_TTL: Duration = Duration::from_secs(300);

pub(super) fn conn_key(c: &Connection) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.name.hash(&mut h);
    serde_json::to_string(&c.settings)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

pub(super) fn setting<'a>(c: &'a Connection, key: &str) -> Option<&'a str> {
    c.setting_str(key).filter(|s| !s.is_empty())
}

pub(super) fn need<'a>(c: &'a Connection, key: &str) -> Result<&'a str, ActionError> {
    setting(c, key).ok_or_else(|| {
        ActionError::fatal(format!(
            "the Salesforce connection `{}` has no `{key}`: add it to the connection",
            c.name
        ))
    })
}

pub(super) fn version(c: &Connection) -> String {
    let v = setting(c, "api_version").unwrap_or(DEFAULT_API_VERSION);
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

impl SalesforceConnector {
    pub(super) fn slot(&self, c: &Connection) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots
            .lock()
            .expect("sessions")
            .entry(conn_key(c))
            .or_default()
            .clone()
    }

    /// The connection's session, signing in when there is none. Concurrent runs wait for
    /// one sign-in rather than each making their own.
    pub(super) async fn session(&self, c: &Connection) -> Result<Session, ActionError> {
        let slot = self.slot(c);
        let mut s = slot.lock().await;
        if let Some(session) = &s.session {
            return Ok(session.clone());
        }
        let session = self.sign_in(c, &mut s).await?;
        s.session = Some(session.clone());
        Ok(session)
    }

    /// Forget a session the org refused, unless another run already replaced it.
    pub(super) async fn forget(&self, c: &Connection, failed: &Session) {
        let slot = self.slot(c);
        let mut s = slot.lock().await;
        if s.session
            .as_ref()
            .is_some_and(|x| x.access_token == failed.access_token)
        {
            s.session = None;
        }
    }

    pub(super) async fn sign_in(
        &self,
        c: &Connection,
        slot: &mut Slot,
    ) -> Result<Session, ActionError> {
        let client_id = need(c, "client_id")?;
        let mut form: Vec<(&str, String)> = Vec::new();
        match setting(c, "auth").unwrap_or("client_credentials") {
            "client_credentials" => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_id", client_id.into()));
                form.push(("client_secret", need(c, "client_secret")?.into()));
            }
            "jwt_bearer" => {
                let assertion = jwt_assertion(
                    client_id,
                    need(c, "username")?,
                    setting(c, "audience").unwrap_or("https://login.salesforce.com"),
                    need(c, "private_key")?,
                )?;
                form.push((
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ));
                form.push(("assertion", assertion));
            }
            "refresh_token" => {
                let rt = slot
                    .refresh_token
                    .clone()
                    .map_or_else(|| need(c, "refresh_token").map(str::to_string), Ok)?;
                form.push(("grant_type", "refresh_token".into()));
                form.push(("client_id", client_id.into()));
                form.push(("client_secret", need(c, "client_secret")?.into()));
                form.push(("refresh_token", rt));
            }
            other => {
                return Err(ActionError::fatal(format!(
                    "the Salesforce connection `{}` has an unknown sign-in method `{other}`",
                    c.name
                )))
            }
        }
        let body = self.token_request(c, &form).await?;
        if let Some(rotated) = body.get("refresh_token").and_then(Value::as_str) {
            // Rotation retires the old refresh token: only the new one works from now on.
            slot.refresh_token = Some(rotated.to_string());
            self.rotated
                .lock()
                .expect("rotated tokens")
                .insert(c.name.clone(), rotated.to_string());
        }
        let token = body.get("access_token").and_then(Value::as_str);
        let instance = body.get("instance_url").and_then(Value::as_str);
        match (token, instance) {
            (Some(t), Some(i)) => Ok(Session {
                access_token: t.to_string(),
                instance_url: i.trim_end_matches('/').to_string(),
            }),
            _ => Err(ActionError::fatal(
                "Salesforce's token answer had no access_token or instance_url",
            )),
        }
    }

    /// POST a form to the org's token endpoint; its JSON answer, or why it refused.
    pub(super) async fn token_request(
        &self,
        c: &Connection,
        form: &[(&str, impl serde::Serialize)],
    ) -> Result<Value, ActionError> {
        let domain = need(c, "my_domain_url")?.trim_end_matches('/');
        let url = format!("{domain}/services/oauth2/token");
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ActionError::fatal(format!("the connection's my_domain_url is not a URL: {e}"))
        })?;
        let resp = self
            .client
            .post(parsed.clone())
            .timeout(Duration::from_secs(30))
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        if !status.is_success() {
            return Err(sign_in_error(&c.name, &url, status, &bytes).with_retry_after(retry));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}
#[derive(serde::Serialize)]
pub(super) struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// The JWT bearer assertion: RS256, `iss` the consumer key, `sub` the username, `aud`
/// the login host (never the My Domain URL), expiring within three minutes.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &str,
) -> Result<String, ActionError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
        ActionError::fatal(format!(
            "the connection's private_key is not an RSA private key in PEM form: {e}"
        ))
    })?;
    let exp = jiff::Timestamp::now().as_second() + 170;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| ActionError::fatal(format!("the JWT assertion could not be signed: {e}")))
}
