//! Who is asking: a login session (HttpOnly, SameSite cookie; unsafe methods need the
//! session's CSRF token in `X-CSRF-Token`) or an API token (`Authorization: Bearer`).
//! Passwords are argon2 hashes; logins are rate-limited per user name and per address,
//! counted before the password is checked, with a bounded table and a bounded number of
//! password checks at once.

use std::collections::{HashMap, VecDeque};
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
use flowbot_store::{Actor, NewUser, Role, Store, User};

use crate::error::ApiError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "flowbot_session";
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

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

/// A user name people can type and the audit log can show: 1 to 64 letters, digits, `.`,
/// `_` or `-` (no spaces, no look-alikes).
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Tokens are stored as their SHA-256.
pub fn token_hash(token: &str) -> String {
    flowbot_store::crypto::sha256_hex(token.as_bytes())
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
    store
        .create_user(
            NewUser::basic("admin", &hash_password(&pw), Role::Owner),
            "flowbot",
        )
        .await?;
    Ok(generated)
}

/// Sign-in attempts counted per client address and per user name, each within a window.
/// An attempt is counted *before* its password is checked (a successful one is then taken
/// back), so parallel guesses cannot all slip under the limit; the table holds at most
/// [`MAX_ENTRIES`] keys, oldest evicted first, so made-up names cannot grow it; and at
/// most [`HASHES_AT_ONCE`] argon2 checks run at once (each takes ~19 MiB).
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
    hashing: tokio::sync::Semaphore,
    /// Attempts per key (a user name, a form from one address) and per address in a window.
    per_key: u32,
    per_address: u32,
}

#[derive(Default)]
struct LimiterState {
    entries: HashMap<String, Window>,
    /// Keys by the start of their window, oldest first (with stale pairs skipped), for
    /// expiry and eviction in constant time.
    order: VecDeque<(Instant, String)>,
}

#[derive(Clone, Copy)]
struct Window {
    count: u32,
    start: Instant,
}

/// Longest user name accepted at sign-in.
pub const MAX_USERNAME: usize = 256;
/// Longest password accepted at sign-in.
pub const MAX_PASSWORD: usize = 1024;
const MAX_PER_USER: u32 = 10;
const MAX_PER_ADDRESS: u32 = 100;
const WINDOW: Duration = Duration::from_secs(300);
pub const MAX_ENTRIES: usize = 10_000;
const HASHES_AT_ONCE: usize = 2;
/// How long an attempt waits for a turn to check its password before it is told to retry.
const HASH_WAIT: Duration = Duration::from_secs(5);

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::with_limits(MAX_PER_USER, MAX_PER_ADDRESS)
    }
}

impl LimiterState {
    fn live(&self, key: &str, now: Instant) -> Option<Window> {
        self.entries
            .get(key)
            .copied()
            .filter(|w| now.duration_since(w.start) < WINDOW)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, key)) = self.order.front() {
            let current = self.entries.get(key).map(|w| w.start);
            if current != Some(*start) {
                self.order.pop_front();
            } else if now.duration_since(*start) >= WINDOW {
                self.entries.remove(key);
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    fn count(&mut self, key: String, now: Instant) {
        if let Some(w) = self.live(&key, now) {
            self.entries.insert(
                key,
                Window {
                    count: w.count + 1,
                    ..w
                },
            );
            return;
        }
        while self.entries.len() >= MAX_ENTRIES {
            match self.order.pop_front() {
                Some((start, k)) => {
                    if self.entries.get(&k).is_some_and(|w| w.start == start) {
                        self.entries.remove(&k);
                    }
                }
                None => break,
            }
        }
        self.entries.insert(
            key.clone(),
            Window {
                count: 1,
                start: now,
            },
        );
        self.order.push_back((now, key));
        if self.order.len() > 2 * MAX_ENTRIES {
            let entries = &self.entries;
            self.order
                .retain(|(s, k)| entries.get(k).is_some_and(|w| w.start == *s));
        }
    }

    fn uncount(&mut self, key: &str) {
        if let Some(w) = self.entries.get_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }
}

/// A counted attempt; give it back with [`LoginLimiter::succeeded`] when the password was
/// right.
pub struct Attempt {
    address: String,
    user: String,
}

impl LoginLimiter {
    /// A limiter allowing `per_key` attempts per key and `per_address` per address in each
    /// window.
    pub fn with_limits(per_key: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter {
            state: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(HASHES_AT_ONCE),
            per_key: per_key.max(1),
            per_address: per_address.max(1),
        }
    }

    /// Count an attempt, or say how long to wait when the address or the user name has
    /// used up its window.
    pub fn attempt(&self, address: &str, user: &str) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let (a, u) = (format!("a|{address}"), format!("u|{user}"));
        let mut st = self.state.lock().expect("limiter");
        st.expire(now);
        for (key, limit) in [(&a, self.per_address), (&u, self.per_key)] {
            if let Some(w) = st.live(key, now).filter(|w| w.count >= limit) {
                return Err(WINDOW.saturating_sub(now.duration_since(w.start)));
            }
        }
        st.count(a.clone(), now);
        st.count(u.clone(), now);
        Ok(Attempt {
            address: a,
            user: u,
        })
    }

    /// The password was right: the attempt does not count against anyone.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut st = self.state.lock().expect("limiter");
        st.uncount(&attempt.address);
        st.entries.remove(&attempt.user);
    }

    /// Keys held now (for tests and figures).
    pub fn len(&self) -> usize {
        self.state.lock().expect("limiter").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check a password against a hash (or, for an unknown user, against a fixed dummy
    /// hash, so both take the same time) off the async threads, at most
    /// [`HASHES_AT_ONCE`] at a time. `None` when no turn came within [`HASH_WAIT`].
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Option<bool> {
        let _turn = tokio::time::timeout(HASH_WAIT, self.hashing.acquire())
            .await
            .ok()?
            .ok()?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash()).to_string();
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        Some(ok && known)
    }
}

impl LoginLimiter {
    /// Hash a new password off the async threads, taking a turn like a check does (so
    /// a flood of sign-ups cannot run more argon2 at once than sign-ins can). `None` when
    /// no turn came within [`HASH_WAIT`].
    pub async fn hash(&self, password: &str) -> Option<String> {
        let _turn = tokio::time::timeout(HASH_WAIT, self.hashing.acquire())
            .await
            .ok()?
            .ok()?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .ok()
    }
}

/// A hash of a random password, made once, that unknown user names are checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token()))
}

/// The caller, put into the request by [`require_auth`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// A read-only API token: GET routes only, whatever the member's role.
    pub read_only: bool,
    /// The client's address, for the audit log.
    pub address: String,
    /// The member's own roles in projects (elsewhere the workspace role applies).
    pub project_roles: HashMap<String, Role>,
}

impl Caller {
    fn method_ok(&self, method: &Method) -> bool {
        !self.read_only || matches!(*method, Method::GET | Method::HEAD)
    }

    /// Whether the caller may call a workspace route that needs `perm` with `method`.
    pub fn may(&self, perm: crate::routes::Perm, method: &Method) -> bool {
        perm.granted(self.user.role) && self.method_ok(method)
    }

    /// The caller's role in a project: owners and admins hold theirs everywhere; others
    /// their role there, if they have one, else their workspace role.
    pub fn role_in(&self, project: &str) -> Role {
        match self.user.role {
            Role::Owner | Role::Admin => self.user.role,
            r => self.project_roles.get(project).copied().unwrap_or(r),
        }
    }

    /// Whether the caller may do what needs `perm` in `project`.
    pub fn may_in(&self, project: &str, perm: crate::routes::Perm, method: &Method) -> bool {
        perm.granted(self.role_in(project)) && self.method_ok(method)
    }

    /// Whether some project lets the caller do what needs `perm`.
    pub fn may_somewhere(&self, perm: crate::routes::Perm, method: &Method) -> bool {
        (perm.granted(self.user.role) || self.project_roles.values().any(|r| perm.granted(*r)))
            && self.method_ok(method)
    }

    /// The projects (of `all`) where the caller may do what needs `perm`.
    pub fn projects_with(&self, perm: crate::routes::Perm, all: &[String]) -> Vec<String> {
        all.iter()
            .filter(|p| perm.granted(self.role_in(p)))
            .cloned()
            .collect()
    }

    /// Refuse unless the caller may do what needs `perm` in the project of the flow `id`
    /// (when such a flow exists: a file not saved yet belongs to no project).
    pub async fn check_flow(
        &self,
        store: &flowbot_store::Store,
        flow_id: &str,
        perm: crate::routes::Perm,
    ) -> Result<(), ApiError> {
        match store
            .project_of(flowbot_store::ProjectOf::Flow, flow_id)
            .await?
        {
            Some(p) => self.check_in(&p, perm),
            None => Ok(()),
        }
    }

    /// Refuse unless the caller may do what needs `perm` (an unsafe method) in `project`.
    pub fn check_in(&self, project: &str, perm: crate::routes::Perm) -> Result<(), ApiError> {
        if self.may_in(project, perm, &Method::POST) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Who the audit log names for what this caller changes.
    pub fn actor(&self) -> Actor {
        Actor::new(self.user.username.clone(), self.address.clone())
    }
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

/// The client's address a request came from (empty behind a test transport).
fn address_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default()
}

/// The caller a request's session cookie or bearer token names, if any; `Err` for a
/// session without its CSRF token on an unsafe method.
async fn resolve_parts(
    s: &AppState,
    headers: &HeaderMap,
    method: &Method,
    address: String,
) -> Result<Option<Caller>, ApiError> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        let Some((user, read_only)) = s.store.api_token_user(&token_hash(token.trim())).await?
        else {
            return Ok(None);
        };
        let project_roles = s.store.project_roles_of(&user.id).await?;
        return Ok(Some(Caller {
            user,
            read_only,
            address,
            project_roles,
        }));
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = s.store.session(&token_hash(token)).await? else {
        return Ok(None);
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !crate::same(sent, &session.csrf_token) {
            return Err(ApiError::Csrf);
        }
    }
    let project_roles = s.store.project_roles_of(&session.user.id).await?;
    Ok(Some(Caller {
        user: session.user,
        read_only: false,
        address,
        project_roles,
    }))
}

/// Every API route behind this needs a session or an API token of an active member.
pub async fn require_auth(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Only the headers are held across the awaits: a request's body is not `Sync`.
    let (method, address) = (req.method().clone(), address_of(&req));
    let caller = resolve_parts(&s, req.headers(), &method, address)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    req.extensions_mut().insert(caller);
    // The permission check in front of each handler looks up what a route names.
    req.extensions_mut().insert(s.store.clone());
    Ok(next.run(req).await)
}

/// Every page behind this needs a signed-in browser; others are sent to sign in.
pub async fn require_page_caller(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    let (method, address) = (req.method().clone(), address_of(&req));
    match resolve_parts(&s, req.headers(), &method, address).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(s.store.clone());
            next.run(req).await
        }
        Ok(None) => axum::response::Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The client's address, for rate limits (unknown behind a test transport).
pub fn peer(info: Option<ConnectInfo<SocketAddr>>) -> String {
    info.map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_before_checking_so_parallel_guesses_stop_at_the_limit() {
        let l = LoginLimiter::default();
        let allowed = (0..100)
            .filter(|_| l.attempt("10.0.0.1", "admin").is_ok())
            .count();
        assert_eq!(allowed, MAX_PER_USER as usize);
        let wait = l
            .attempt("10.0.0.2", "admin")
            .err()
            .expect("the name is blocked");
        assert!(
            wait > Duration::from_secs(200) && wait <= WINDOW,
            "{wait:?}"
        );
    }

    #[test]
    fn one_address_is_limited_whatever_names_it_tries() {
        let l = LoginLimiter::default();
        let allowed = (0..500)
            .filter(|i| l.attempt("10.0.0.1", &format!("user{i}")).is_ok())
            .count();
        assert_eq!(allowed, MAX_PER_ADDRESS as usize);
    }

    #[test]
    fn a_right_password_takes_its_attempt_back() {
        let l = LoginLimiter::default();
        for _ in 0..50 {
            let a = l.attempt("10.0.0.1", "admin").unwrap();
            l.succeeded(a);
        }
        assert!(l.attempt("10.0.0.1", "admin").is_ok());
    }

    #[test]
    fn the_table_never_holds_more_than_its_maximum() {
        let l = LoginLimiter::default();
        for i in 0..3 * MAX_ENTRIES {
            let _ = l.attempt(
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                &format!("{i:0>200}"),
            );
        }
        assert!(l.len() <= MAX_ENTRIES, "{}", l.len());
        assert!(l.state.lock().unwrap().order.len() <= 2 * MAX_ENTRIES);
    }
}
