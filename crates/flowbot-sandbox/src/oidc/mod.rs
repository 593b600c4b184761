//! An OpenID Connect identity provider, as a company's IdP (Entra ID, Okta, Google
//! Workspace, Keycloak) answers a relying party: discovery, JWKS, an authorization
//! endpoint with a sign-in page, the token endpoint (authorization code with PKCE S256,
//! client authentication by `client_secret_basic` or `client_secret_post`) and userinfo.
//! ID tokens are RS256 JWTs with `iss`, `sub`, `aud`, `exp`, `iat`, `nonce`, `email`,
//! `email_verified`, `name` and a `groups` claim. Users and their groups are configurable
//! (and replaceable while running), so single sign-on is tested offline.
//!
//! Faults for the tests of the relying party's checks: an ID token with its payload changed
//! after signing, not signed at all, for another audience, from another issuer, already
//! expired, or with another nonce.
//!
//! The signing key is a throwaway generated for the simulator (`idp-key.pem`), never a
//! real one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalogue::decode;
use crate::Running;

const KEY_PEM: &str = include_str!("idp-key.pem");
const KEY_ID: &str = "flowbot-sandbox-idp-1";
/// How long a code works, and an ID token lives.
const CODE_TTL_S: i64 = 60;
const TOKEN_TTL_S: i64 = 300;

/// Someone who can sign in at the IdP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdpUser {
    /// The stable subject identifier (`sub`).
    pub sub: String,
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A relying party registered at the IdP.
#[derive(Debug, Clone)]
pub struct IdpClient {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub client: IdpClient,
    pub users: Vec<IdpUser>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            client: IdpClient {
                client_id: "flowbot".into(),
                client_secret: "sandbox-oidc-secret".into(),
            },
            users: vec![
                IdpUser {
                    sub: "00u-hanako".into(),
                    email: "hanako@example.co.jp".into(),
                    name: "山田 花子".into(),
                    groups: vec!["flowbot-editors".into()],
                },
                IdpUser {
                    sub: "00u-jiro".into(),
                    email: "jiro@example.co.jp".into(),
                    name: "鈴木 次郎".into(),
                    groups: vec!["flowbot-viewers".into()],
                },
                IdpUser {
                    sub: "00u-mallory".into(),
                    email: "mallory@elsewhere.example".into(),
                    name: "Mallory".into(),
                    groups: vec![],
                },
            ],
        }
    }
}

/// What is wrong with the next ID tokens, for the relying party's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenFault {
    #[default]
    None,
    /// The payload changed after signing.
    Tampered,
    /// Not signed at all (`alg: none`), a classic forgery.
    Unsigned,
    WrongAudience,
    WrongIssuer,
    Expired,
    WrongNonce,
}

/// An authorization waiting to be exchanged.
struct Grant {
    user: IdpUser,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    expires: i64,
}

pub struct OidcSim {
    cfg: OidcConfig,
    issuer: Mutex<String>,
    users: Mutex<Vec<IdpUser>>,
    grants: Mutex<HashMap<String, Grant>>,
    /// access token → user, for userinfo.
    access: Mutex<HashMap<String, IdpUser>>,
    fault: Mutex<TokenFault>,
    key: RsaKeyPair,
    /// Codes exchanged, for the tests (a replayed code must not get a second token).
    exchanged: Mutex<u64>,
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("the simulator's key is PEM")
}

impl OidcSim {
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    pub fn issuer(&self) -> String {
        self.issuer.lock().expect("issuer").clone()
    }

    /// Replace who can sign in.
    pub fn set_users(&self, users: Vec<IdpUser>) {
        *self.users.lock().expect("users") = users;
    }

    pub fn set_fault(&self, fault: TokenFault) {
        *self.fault.lock().expect("fault") = fault;
    }

    pub fn codes_exchanged(&self) -> u64 {
        *self.exchanged.lock().expect("count")
    }

    /// The JWKS: the public half of the signing key.
    fn jwks(&self) -> Value {
        let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = self.key.public().into();
        json!({ "keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID,
            "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e),
        }]})
    }

    fn sign(&self, claims: &Value, key: &RsaKeyPair) -> String {
        let head = URL_SAFE_NO_PAD
            .encode(json!({ "alg": "RS256", "typ": "JWT", "kid": KEY_ID }).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{head}.{body}");
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .expect("RS256 signs");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn id_token(&self, user: &IdpUser, nonce: Option<&str>) -> String {
        let fault = *self.fault.lock().expect("fault");
        let now = now_s();
        let mut claims = json!({
            "iss": self.issuer(), "sub": user.sub, "aud": self.cfg.client.client_id,
            "iat": now, "exp": now + TOKEN_TTL_S, "auth_time": now,
            "email": user.email, "email_verified": true, "name": user.name, "groups": user.groups,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        match fault {
            TokenFault::WrongAudience => claims["aud"] = json!("someone-else"),
            TokenFault::WrongIssuer => claims["iss"] = json!("https://idp.elsewhere.example"),
            TokenFault::Expired => {
                claims["iat"] = json!(now - 2 * TOKEN_TTL_S);
                claims["exp"] = json!(now - TOKEN_TTL_S);
            }
            TokenFault::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
            _ => {}
        }
        match fault {
            TokenFault::Unsigned => {
                let head =
                    URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
                format!("{head}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
            }
            TokenFault::Tampered => {
                let token = self.sign(&claims, &self.key);
                let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
                let mut changed = claims.clone();
                changed["email"] = json!("owner@example.co.jp");
                parts[1] = URL_SAFE_NO_PAD.encode(changed.to_string());
                parts.join(".")
            }
            _ => self.sign(&claims, &self.key),
        }
    }
}

pub async fn start(cfg: OidcConfig, port: u16) -> std::io::Result<Running<OidcSim>> {
    let sim = Arc::new(OidcSim {
        users: Mutex::new(cfg.users.clone()),
        cfg,
        issuer: Mutex::new(String::new()),
        grants: Mutex::default(),
        access: Mutex::default(),
        fault: Mutex::default(),
        key: RsaKeyPair::from_pkcs8(&pem_der(KEY_PEM)).expect("the simulator's key is PKCS#8"),
        exchanged: Mutex::default(),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_page).post(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/__control/users", axum::routing::put(put_users))
        .route("/__control/fault", axum::routing::put(put_fault))
        .with_state(sim.clone());
    crate::serve(sim, router, port, |s, url| {
        *s.issuer.lock().expect("issuer") = url.to_string();
    })
    .await
}

async fn discovery(State(sim): State<Arc<OidcSim>>) -> Json<Value> {
    let iss = sim.issuer();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name", "groups"],
    }))
}

async fn jwks(State(sim): State<Arc<OidcSim>>) -> Json<Value> {
    Json(sim.jwks())
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The IdP's sign-in page: choose who you are (the simulator keeps no passwords).
async fn authorize_page(
    State(sim): State<Arc<OidcSim>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if let Err(why) = check_request(&sim, &q) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let hidden: String = [
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("state", &q.state),
        ("nonce", &q.nonce),
        ("code_challenge", &q.code_challenge),
        ("code_challenge_method", &q.code_challenge_method),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref()
            .map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    })
    .collect();
    let options: String = sim
        .users
        .lock()
        .expect("users")
        .iter()
        .map(|u| {
            format!(
                r#"<option value="{}">{} &lt;{}&gt;</option>"#,
                escape(&u.sub),
                escape(&u.name),
                escape(&u.email)
            )
        })
        .collect();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sandbox IdP</title></head>
<body><main><h1>Sandbox identity provider</h1>
<form method="post" action="/authorize">{hidden}
<label for="sub">Sign in as</label> <select id="sub" name="sub">{options}</select>
<button type="submit" id="idp-sign-in">Sign in</button></form></main></body></html>"#
    ))
    .into_response()
}

/// What is wrong with an authorization request, if anything.
fn check_request(sim: &OidcSim, q: &AuthorizeQuery) -> Result<(), &'static str> {
    let bad = Err;
    if q.client_id.as_deref() != Some(sim.cfg.client.client_id.as_str()) {
        return bad("unknown client_id");
    }
    if q.redirect_uri.as_deref().is_none_or(str::is_empty) {
        return bad("redirect_uri is required");
    }
    if q.response_type.as_deref().is_some_and(|t| t != "code") {
        return bad("only response_type=code");
    }
    if q.scope
        .as_deref()
        .is_some_and(|s| !s.split(' ').any(|x| x == "openid"))
    {
        return bad("the scope must include openid");
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return bad("only code_challenge_method=S256");
    }
    Ok(())
}

#[derive(Deserialize)]
struct AuthorizeForm {
    sub: String,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(State(sim): State<Arc<OidcSim>>, Form(f): Form<AuthorizeForm>) -> Response {
    let q = AuthorizeQuery {
        response_type: Some("code".into()),
        client_id: f.client_id.clone(),
        redirect_uri: f.redirect_uri.clone(),
        scope: None,
        state: f.state.clone(),
        nonce: f.nonce.clone(),
        code_challenge: f.code_challenge.clone(),
        code_challenge_method: f.code_challenge_method.clone(),
    };
    if let Err(why) = check_request(&sim, &q) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let Some(user) = sim
        .users
        .lock()
        .expect("users")
        .iter()
        .find(|u| u.sub == f.sub)
        .cloned()
    else {
        return (StatusCode::BAD_REQUEST, "no such user").into_response();
    };
    let code = random();
    let redirect = f.redirect_uri.clone().unwrap_or_default();
    sim.grants.lock().expect("grants").insert(
        code.clone(),
        Grant {
            user,
            redirect_uri: redirect.clone(),
            challenge: f.code_challenge,
            nonce: f.nonce,
            expires: now_s() + CODE_TTL_S,
        },
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut to = format!("{redirect}{sep}code={code}");
    if let Some(s) = f.state {
        to.push_str("&state=");
        to.extend(form_urlencoded::byte_serialize(s.as_bytes()));
    }
    Redirect::to(&to).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// The client's credentials, from HTTP Basic or the form.
fn client_of(headers: &HeaderMap, f: &TokenForm) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
        return Some((decode(id), decode(secret)));
    }
    Some((f.client_id.clone()?, f.client_secret.clone()?))
}

async fn token(
    State(sim): State<Arc<OidcSim>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let client = &sim.cfg.client;
    match client_of(&headers, &f) {
        Some((id, secret)) if id == client.client_id && secret == client.client_secret => {}
        _ => {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }
    if f.grant_type.as_deref() != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    // A code works once: taken out whatever happens next.
    let Some(grant) = f
        .code
        .as_deref()
        .and_then(|c| sim.grants.lock().expect("grants").remove(c))
    else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code is unknown or used",
        );
    };
    if grant.expires < now_s() || f.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code expired or the redirect_uri differs",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verified = f.code_verifier.as_deref().is_some_and(|v| {
            let digest = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
            URL_SAFE_NO_PAD.encode(digest.as_ref()) == *challenge
        });
        if !verified {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the PKCE code_verifier does not match",
            );
        }
    }
    *sim.exchanged.lock().expect("count") += 1;
    let access = random();
    sim.access
        .lock()
        .expect("access")
        .insert(access.clone(), grant.user.clone());
    let id_token = sim.id_token(&grant.user, grant.nonce.as_deref());
    Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S,
        "id_token": id_token, "scope": "openid email profile groups",
    }))
    .into_response()
}

async fn userinfo(State(sim): State<Arc<OidcSim>>, headers: HeaderMap) -> Response {
    let user = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| sim.access.lock().expect("access").get(t.trim()).cloned());
    match user {
        Some(u) => Json(json!({
            "sub": u.sub, "email": u.email, "email_verified": true, "name": u.name, "groups": u.groups,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
    }
}

async fn put_users(State(sim): State<Arc<OidcSim>>, Json(users): Json<Vec<IdpUser>>) -> StatusCode {
    sim.set_users(users);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct FaultBody {
    id_token: TokenFault,
}

async fn put_fault(State(sim): State<Arc<OidcSim>>, Json(b): Json<FaultBody>) -> StatusCode {
    sim.set_fault(b.id_token);
    StatusCode::NO_CONTENT
}
