//! Signing in with a token the app hands out: OAuth 2.0 (authorization code with PKCE,
//! refreshed; client credentials) and `token_exchange` (a sign-in request). Tokens are
//! kept per connection until shortly before they expire; a refresh token the app rotates
//! is handed to the worker to save, or the connection would stop working.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowbot_core::template::Scope;
use flowbot_core::{ActionError, Connection, OAuthRequest};
use serde_json::{json, Map, Value};

use super::format::{Auth, Grant, SignIn, TokenRead};
use super::{scalars, FileApp};
use crate::http::{shown_url, transport_error};

/// A token is asked for again this long before the app says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// How long a token lives when the app does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(super) struct Tokens {
    /// (connection name, settings digest) → the token and until when it is used.
    cache: Mutex<HashMap<(String, u64), (String, Instant)>>,
    /// Connection name → a refresh token the app rotated, for the worker to save.
    rotated: Mutex<HashMap<String, String>>,
}

impl Tokens {
    pub(super) fn take_rotated(&self) -> Vec<(String, String, Value)> {
        crate::http::rotated_refresh_tokens(&mut self.rotated.lock().expect("rotated tokens"))
    }
}

/// Changed settings (a new secret, a reconnect) must not reuse the old token.
fn key(conn: &Connection) -> (String, u64) {
    (
        conn.name.clone(),
        super::digest(&Value::Object(conn.settings.clone())),
    )
}

impl FileApp {
    /// How a connection signs in: `auth`, unless a field of `auth_by_field` is filled
    /// (the first in the order of their names). Read from the scope's `connection`, the
    /// settings with their defaults, wherever it is asked.
    pub(super) fn auth_for(&self, scope: &Scope) -> &Auth {
        let settings = scope.get("connection").and_then(Value::as_object);
        let filled = |f: &String| {
            settings
                .and_then(|s| s.get(f))
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        };
        self.app
            .connection
            .auth_by_field
            .iter()
            .find(|(f, _)| filled(f))
            .map_or(&self.app.connection.auth, |(_, a)| a)
    }

    /// Whether requests carry a token this app hands out (and a 401 may mean it expired).
    pub(super) fn uses_tokens(&self, scope: &Scope) -> bool {
        matches!(
            self.auth_for(scope),
            Auth::OAuth2 { .. } | Auth::TokenExchange { .. }
        )
    }

    /// The header carrying the connection's token, asking the app for one when none is
    /// kept (or `fresh` says the kept one was refused).
    pub(super) async fn token_header(
        &self,
        conn: Option<&Connection>,
        scope: &Scope,
        fresh: bool,
    ) -> Result<Option<(String, String)>, ActionError> {
        if !self.uses_tokens(scope) {
            return Ok(None);
        }
        let conn = conn.ok_or_else(|| {
            ActionError::fatal(format!(
                "this {} step has no connection",
                self.manifest.name.en
            ))
        })?;
        let k = key(conn);
        let kept = {
            let cache = self.tokens.cache.lock().expect("token cache");
            cache
                .get(&k)
                .filter(|(_, until)| !fresh && Instant::now() < *until)
                .map(|(t, _)| t.clone())
        };
        let token = match kept {
            Some(t) => t,
            None => {
                let (t, lifetime) = self.fetch_token(conn, scope).await?;
                let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
                self.tokens
                    .cache
                    .lock()
                    .expect("token cache")
                    .insert(k, (t.clone(), until));
                t
            }
        };
        Ok(Some(match self.auth_for(scope) {
            Auth::TokenExchange {
                header: Some(h), ..
            } => {
                let mut s = scope.clone();
                s.insert("token".into(), json!(token));
                let value = self.render_text("the token header", &h.value, &s)?;
                (h.name.clone(), value)
            }
            _ => ("authorization".into(), format!("Bearer {token}")),
        }))
    }

    async fn fetch_token(
        &self,
        conn: &Connection,
        scope: &Scope,
    ) -> Result<(String, Duration), ActionError> {
        let (req, url, read) = match self.auth_for(scope) {
            Auth::OAuth2 {
                grant,
                token_url,
                scopes,
                client_id,
                client_secret,
                token,
                ..
            } => {
                let url = self.render_url("the token URL", token_url, scope)?;
                let mut form = vec![(
                    "client_id".to_string(),
                    self.render_text("the client id", client_id, scope)?,
                )];
                if let Some(secret) = client_secret {
                    let secret = self.render_text("the client secret", secret, scope)?;
                    if !secret.is_empty() {
                        form.push(("client_secret".into(), secret));
                    }
                }
                match grant {
                    Grant::ClientCredentials => {
                        form.push(("grant_type".into(), "client_credentials".into()));
                        if !scopes.is_empty() {
                            form.push(("scope".into(), scopes.join(" ")));
                        }
                    }
                    Grant::AuthorizationCode => {
                        let refresh = conn
                            .setting_str("refresh_token")
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| {
                                ActionError::fatal(format!(
                                    "the {} connection `{}` is not connected yet: use Connect on its page",
                                    self.manifest.name.en, conn.name
                                ))
                            })?;
                        form.push(("grant_type".into(), "refresh_token".into()));
                        form.push(("refresh_token".into(), refresh.to_string()));
                    }
                }
                let req = self
                    .client
                    .post(url.clone())
                    .form(&form)
                    .timeout(super::REQUEST_TIMEOUT);
                (req, url, token)
            }
            Auth::TokenExchange { request, token, .. } => {
                let (url, req) = self.sign_in_request(request, scope)?;
                (req, url, token)
            }
            _ => unreachable!("uses_tokens() is checked first"),
        };
        let body = self.token_answer(req, &url).await?;
        self.read_token(conn, read, body)
    }

    fn sign_in_request(
        &self,
        s: &SignIn,
        scope: &Scope,
    ) -> Result<(reqwest::Url, reqwest::RequestBuilder), ActionError> {
        let url = self.render_url("the sign-in URL", &s.url, scope)?;
        let mut req = self
            .client
            .request(s.method.as_reqwest(), url.clone())
            .timeout(super::REQUEST_TIMEOUT);
        for (name, t) in &s.headers {
            req = req.header(
                name.as_str(),
                self.render_text(&format!("header `{name}`"), t, scope)?,
            );
        }
        if let Some(b) = &s.body {
            if let Some(v) = &b.json {
                req = req.json(&super::without_nulls(self.render(
                    "the sign-in body",
                    v,
                    scope,
                )?));
            } else if let Some(f) = &b.form {
                let v = self.render("the sign-in form", &json!(f), scope)?;
                req = req.form(&scalars(&v));
            }
        }
        Ok((url, req))
    }

    /// A URL template: whole, or a path after the connection's base URL.
    fn render_url(&self, what: &str, t: &str, scope: &Scope) -> Result<reqwest::Url, ActionError> {
        let rendered = self.render_text(what, t, scope)?;
        self.on_base(what, rendered, scope)
    }

    async fn token_answer(
        &self,
        req: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> Result<Value, ActionError> {
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&reqwest::Method::POST, url, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error(&reqwest::Method::POST, url, e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            // The sign-in answer may echo credentials: only its error fields are shown.
            let why = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .or_else(|| body.get("message"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_default();
            let msg = format!(
                "{} refused the sign-in at {} ({status}){}",
                self.manifest.name.en,
                shown_url(url),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                ActionError::retryable(msg)
            } else {
                ActionError::fatal(msg).with_code("SIGN_IN_REFUSED")
            });
        }
        Ok(body)
    }

    fn read_token(
        &self,
        conn: &Connection,
        read: &TokenRead,
        body: Value,
    ) -> Result<(String, Duration), ActionError> {
        let mut scope = Scope::new();
        scope.insert("response".into(), json!({ "body": body }));
        let lenient = |t: &str| {
            self.render_text("the token answer", t, &scope)
                .unwrap_or_default()
        };
        let token = lenient(&read.access_token);
        if token.is_empty() {
            return Err(ActionError::fatal(format!(
                "{} answered the sign-in without a token where the app file says (`{}`)",
                self.manifest.name.en, read.access_token
            )));
        }
        let lifetime = lenient(&read.expires_in)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs_f64);
        let refresh = lenient(&read.refresh_token);
        // Only a connection that signs in with a refresh token keeps a rotated one.
        let kept = conn.setting_str("refresh_token");
        if !refresh.is_empty() && kept.is_some() && kept != Some(refresh.as_str()) {
            self.tokens
                .rotated
                .lock()
                .expect("rotated tokens")
                .insert(conn.name.clone(), refresh);
        }
        Ok((token, lifetime))
    }

    /// The approval page for the authorization-code grant.
    pub(super) fn authorize_url(
        &self,
        conn: &Connection,
        r: &OAuthRequest<'_>,
    ) -> Result<String, String> {
        let Auth::OAuth2 {
            grant: Grant::AuthorizationCode,
            authorize_url: Some(page),
            scopes,
            client_id,
            ..
        } = &self.app.connection.auth
        else {
            return Err(format!(
                "app `{}` does not connect through OAuth",
                self.app.id
            ));
        };
        let scope = self.scope(None, &Map::new(), Some(conn));
        let mut url = self
            .render_url("the authorize URL", page, &scope)
            .map_err(|e| e.message)?;
        let client_id = self
            .render_text("the client id", client_id, &scope)
            .map_err(|e| e.message)?;
        if client_id.is_empty() {
            return Err("set the connection's client id first".into());
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client_id)
                .append_pair("redirect_uri", r.redirect_uri)
                .append_pair("state", r.state)
                .append_pair("code_challenge", r.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
        }
        Ok(url.to_string())
    }

    /// The code for the refresh token the connection signs in with from now on.
    pub(super) async fn exchange_code(
        &self,
        conn: &Connection,
        r: &OAuthRequest<'_>,
        code: &str,
    ) -> Result<Map<String, Value>, ActionError> {
        let Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            token,
            ..
        } = &self.app.connection.auth
        else {
            return Err(ActionError::fatal(format!(
                "app `{}` does not connect through OAuth",
                self.app.id
            )));
        };
        let scope = self.scope(None, &Map::new(), Some(conn));
        let url = self.render_url("the token URL", token_url, &scope)?;
        let mut form = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".into(), code.to_string()),
            ("redirect_uri".into(), r.redirect_uri.to_string()),
            (
                "client_id".into(),
                self.render_text("the client id", client_id, &scope)?,
            ),
            ("code_verifier".into(), r.code_verifier.to_string()),
        ];
        if let Some(secret) = client_secret {
            let secret = self.render_text("the client secret", secret, &scope)?;
            if !secret.is_empty() {
                form.push(("client_secret".into(), secret));
            }
        }
        let body = self
            .token_answer(
                self.client
                    .post(url.clone())
                    .form(&form)
                    .timeout(super::REQUEST_TIMEOUT),
                &url,
            )
            .await?;
        let mut s = Scope::new();
        s.insert("response".into(), json!({ "body": body }));
        let refresh = self
            .render_text("the token answer", &token.refresh_token, &s)
            .unwrap_or_default();
        if refresh.is_empty() {
            return Err(ActionError::fatal(format!(
                "{} did not connect: its answer had no refresh token (is offline access granted?)",
                self.manifest.name.en
            )));
        }
        let mut out = Map::new();
        out.insert("refresh_token".into(), json!(refresh));
        Ok(out)
    }
}
