//! Who is asking: a login session (HttpOnly, SameSite cookie; unsafe methods need the
//! session's CSRF token in `X-CSRF-Token`) or an API token (`Authorization: Bearer`).
//! Passwords are argon2 hashes; logins are rate-limited per user name and address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use flowbot_store::{Store, User};

use crate::error::ApiError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "flowbot_session";
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Tokens are stored as their SHA-256.
pub fn token_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Create the admin account on first start: the password from `FLOWBOT_ADMIN_PASSWORD`, or
/// a generated one returned so it can be printed once.
pub async fn ensure_admin(
    store: &Store,
    password: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (pw, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_string(), None),
        None => {
            let p = random_token()[..20].to_string();
            (p.clone(), Some(p))
        }
    };
    store.create_user("admin", &hash_password(&pw)).await?;
    Ok(generated)
}

/// Failed logins per key (user name, address) within a window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn blocked(&self, key: &str) -> bool {
        let f = self.failures.lock().expect("limiter");
        f.get(key)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
    }

    pub fn failed(&self, key: &str) {
        let mut f = self.failures.lock().expect("limiter");
        let e = f.entry(key.to_string()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("limiter").remove(key);
    }
}

/// The caller, put into the request by [`require_auth`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Every route behind this needs a session or an API token.
pub async fn require_auth(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let user = if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        s.store
            .api_token_user(&token_hash(token.trim()))
            .await?
            .ok_or(ApiError::Unauthorized)?
    } else if let Some(token) = cookie(headers, SESSION_COOKIE) {
        let session = s
            .store
            .session(&token_hash(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !crate::same(sent, &session.csrf_token) {
                return Err(ApiError::Csrf);
            }
        }
        session.user
    } else {
        return Err(ApiError::Unauthorized);
    };
    req.extensions_mut().insert(Caller { user });
    Ok(next.run(req).await)
}

/// The client's address, for rate limits (unknown behind a test transport).
pub fn peer(info: Option<ConnectInfo<SocketAddr>>) -> String {
    info.map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default()
}
