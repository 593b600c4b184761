//! The OAuth 2.0 endpoints: token (client credentials, JWT bearer, refresh token,
//! authorization code with PKCE), the approval page, and the API versions.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    assertion: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

pub(super) fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct JwtClaims {
    iss: String,
    sub: String,
    exp: i64,
}

pub(super) async fn token(
    State(sim): State<Arc<SalesforceSim>>,
    Form(f): Form<TokenForm>,
) -> Response {
    let cfg = &sim.cfg;
    let client_ok = || {
        f.client_id.as_deref() == Some(cfg.client_id.as_str())
            && f.client_secret.as_deref() == Some(cfg.client_secret.as_str())
    };
    let mut org = sim.org.lock().expect("org");
    match f.grant_type.as_deref() {
        Some("client_credentials") => {
            if f.client_id.as_deref() != Some(cfg.client_id.as_str()) {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            Json(sim.token_answer(&mut org, None)).into_response()
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(pem) = &cfg.jwt_public_key_pem else {
                return oauth_error(
                    "invalid_grant",
                    "no certificate is configured for the connected app",
                );
            };
            let Some(assertion) = &f.assertion else {
                return oauth_error("invalid_request", "assertion is missing");
            };
            let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) else {
                return oauth_error(
                    "invalid_grant",
                    "the connected app's certificate is unusable",
                );
            };
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            // Not the My Domain URL: Salesforce rejects that audience.
            validation.set_audience(&[
                "https://login.salesforce.com",
                "https://test.salesforce.com",
            ]);
            validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            let claims = match jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation) {
                Ok(data) => data.claims,
                Err(e) => return oauth_error("invalid_grant", &format!("invalid assertion: {e}")),
            };
            if claims.iss != cfg.client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if claims.sub != cfg.username {
                return oauth_error("invalid_grant", "user hasn't approved this consumer");
            }
            let now = jiff::Timestamp::now().as_second();
            if claims.exp > now + 180 + 5 {
                return oauth_error("invalid_grant", "expiration time is too far in the future");
            }
            Json(sim.token_answer(&mut org, None)).into_response()
        }
        Some("refresh_token") => {
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let Some(rt) = &f.refresh_token else {
                return oauth_error("invalid_request", "refresh_token is missing");
            };
            if !org.refresh_tokens.contains(rt) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
            org.refreshes += 1;
            let next = if cfg.rotate_refresh_tokens {
                org.refresh_tokens.remove(rt);
                let n = format!("5Aep861{}", uuid::Uuid::new_v4().simple());
                org.refresh_tokens.insert(n.clone());
                Some(n)
            } else {
                None
            };
            Json(sim.token_answer(&mut org, next)).into_response()
        }
        Some("authorization_code") => {
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let Some((redirect, challenge)) = f.code.as_ref().and_then(|c| org.codes.remove(c))
            else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if f.redirect_uri.as_deref() != Some(redirect.as_str()) {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = challenge {
                let verifier = f.code_verifier.clone().unwrap_or_default();
                let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest.as_ref()) != challenge {
                    return oauth_error("invalid_grant", "invalid code verifier");
                }
            }
            let rt = format!("5Aep861{}", uuid::Uuid::new_v4().simple());
            org.refresh_tokens.insert(rt.clone());
            Json(sim.token_answer(&mut org, Some(rt))).into_response()
        }
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
}

/// Approves at once and sends the browser back with a code, as a user clicking "Allow".
pub(super) async fn authorize(
    State(sim): State<Arc<SalesforceSim>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if q.response_type.as_deref() != Some("code")
        || q.client_id.as_deref() != Some(sim.cfg.client_id.as_str())
    {
        return (StatusCode::BAD_REQUEST, "error=invalid_client_id").into_response();
    }
    let Some(redirect) = q.redirect_uri else {
        return (StatusCode::BAD_REQUEST, "error=redirect_uri_missing").into_response();
    };
    let code = format!("aPrx{}", uuid::Uuid::new_v4().simple());
    sim.org
        .lock()
        .expect("org")
        .codes
        .insert(code.clone(), (redirect.clone(), q.code_challenge));
    let mut url = match reqwest::Url::parse(&redirect) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "error=invalid redirect_uri").into_response(),
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.state {
        url.query_pairs_mut().append_pair("state", &state);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

pub(super) async fn versions() -> Json<Value> {
    Json(json!(VERSIONS
        .iter()
        .map(|(label, v)| json!({ "label": label, "url": format!("/services/data/v{v}"), "version": v }))
        .collect::<Vec<_>>()))
}
