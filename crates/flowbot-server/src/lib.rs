//! flowbot's HTTP server: webhook ingress, the REST API, the web UI and the editor's API,
//! health and metrics, on a connection loop of its own (`conn`); and the one assembly of a
//! running flowbot (`App`).
//!
//! **Invariant:** a webhook is answered 2xx only after its event and run are committed; when
//! they cannot be stored the answer is 503, so the sender retries. Only this crate knows
//! HTTP.

mod api;
mod app;
pub mod auth;
pub mod conn;
mod editor;
mod error;
mod explain;
mod forms;
mod ingress;
pub mod openapi;
pub mod routes;
pub mod smtp;
pub mod sso;
pub mod stored_apps;
mod ui;

use std::sync::Arc;

pub use app::{App, AppConfig, AppError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use flowbot_core::Apps;
use flowbot_engine::FlowCache;
use flowbot_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Larger webhook bodies are refused with 413.
    pub max_body: usize,
    /// The address users reach the server at; when it is https, every cookie is `Secure`.
    pub public_url: Option<String>,
    /// How many connections, and for how long each may send nothing useful.
    pub limits: conn::Limits,
    /// Single sign-on through an OpenID Connect identity provider.
    pub sso: Option<sso::SsoConfig>,
    /// Answers one address may send to one form in 5 minutes (ten times that to all forms).
    pub form_answers: u32,
    /// The mail trigger's SMTP receiver; None: mail is not received.
    pub mail: Option<smtp::MailConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: 1024 * 1024,
            public_url: None,
            limits: conn::Limits::default(),
            sso: None,
            form_answers: 10,
            mail: None,
        }
    }
}

impl ServerConfig {
    /// The address users reach the server at, when it is configured.
    pub(crate) fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref().filter(|u| !u.is_empty())
    }

    fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub apps: Apps,
    pub config: ServerConfig,
    pub(crate) flows: FlowCache,
    pub(crate) limiter: Arc<auth::LoginLimiter>,
    /// Form answers counted per address (and per form from it), as sign-ins are.
    pub(crate) form_limiter: Arc<auth::LoginLimiter>,
    /// Form answers with files being taken in at once: beyond it, one is asked to come
    /// back (503), so a flood of uploads cannot fill the disk or slow the rest.
    pub(crate) uploads: Arc<tokio::sync::Semaphore>,
    /// (id, YAML) of the built-in templates.
    pub(crate) templates: Vec<(&'static str, &'static str)>,
    /// The identity provider, when single sign-on is configured.
    pub(crate) sso: Option<Arc<sso::Sso>>,
}

impl AppState {
    /// A built-in template's YAML by its id.
    pub(crate) fn template(&self, id: &str) -> Option<&'static str> {
        self.templates
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, y)| *y)
    }

    pub fn new(store: Store, apps: Apps, config: ServerConfig) -> AppState {
        let sso = config.sso.clone().map(|c| Arc::new(sso::Sso::new(c)));
        let form_answers = config.form_answers;
        AppState {
            sso,
            store,
            apps,
            config,
            flows: FlowCache::default(),
            limiter: Arc::default(),
            form_limiter: Arc::new(auth::LoginLimiter::with_limits(
                form_answers,
                form_answers.saturating_mul(10),
            )),
            uploads: Arc::new(tokio::sync::Semaphore::new(forms::UPLOADS_AT_ONCE)),
            templates: flowbot_connectors::templates::TEMPLATES
                .iter()
                .map(|t| (t.id, t.yaml))
                .collect(),
        }
    }
}

/// Every route that needs a caller, described.
fn protected_routes() -> routes::Routes {
    api::protected().merge(editor::routes()).add(
        routes::op("get", "/metrics", "Prometheus metrics (OpenMetrics text)")
            .needs(routes::Perm::Read)
            .answers("application/openmetrics-text", 200),
        metrics,
    )
}

/// Every route open to anyone, described.
fn public_routes() -> routes::Routes {
    use routes::op;
    api::public()
        .add(
            op("get", "/healthz", "Liveness")
                .public()
                .answers("text/plain", 200),
            healthz,
        )
        .add(
            op("get", "/readyz", "Readiness (the database answers)")
                .public()
                .answers("text/plain", 200),
            readyz,
        )
        .add_routed(
            op(
                "post",
                "/hooks/{flow_id}/{token}",
                "Webhook ingress: the event and its run are stored before the answer",
            )
            .public()
            .query::<ingress::WebhookQuery>()
            .json_body::<serde_json::Value>()
            .body::<ingress::FormFields>("application/x-www-form-urlencoded")
            .returns::<flowbot_store::EnqueueOutcome>()
            .status(202)
            .also::<flowbot_store::EnqueueOutcome>(200),
            // Ingress applies the size limit itself, so an oversized body is answered 413
            // rather than cut off mid-upload.
            post(ingress::webhook).layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

/// Every route and page of the router, from the same table: what the API description
/// lists (its API routes) and what the access tests walk (all of them).
pub fn route_docs() -> Vec<routes::RouteDoc> {
    let mut docs = protected_routes().docs;
    docs.extend(public_routes().docs);
    docs.extend(ui::pages().docs);
    docs.extend(ui::public_pages().docs);
    docs
}

async fn healthz() -> &'static str {
    "ok"
}

pub fn router(state: AppState) -> Router {
    let protected = protected_routes()
        .router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    let pages = ui::pages()
        .router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_page_caller,
        ));
    Router::new()
        .merge(protected)
        .merge(public_routes().router)
        .merge(pages)
        .merge(ui::public_pages().router)
        .merge(ui::assets())
        .fallback(not_found)
        // The middleware's state is the one fact it needs, decided once: not a clone of
        // AppState on every answer.
        .layer(axum::middleware::map_response_with_state(
            SecureCookies(state.config.secure_cookies()),
            security_headers,
        ))
        .with_state(state)
}

/// Pages may load only the server's own scripts, styles and images (no inline script or
/// style), may not be framed, and send no Referer elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether every cookie gets `Secure` (the public URL is https).
#[derive(Clone, Copy)]
struct SecureCookies(bool);

async fn security_headers(
    State(SecureCookies(secure)): State<SecureCookies>,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if secure {
        let cookies: Vec<HeaderValue> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| {
                if v.to_ascii_lowercase().contains("; secure") {
                    v.to_string()
                } else {
                    format!("{v}; Secure")
                }
            })
            .filter_map(|v| HeaderValue::from_str(&v).ok())
            .collect();
        if !cookies.is_empty() {
            h.remove(header::SET_COOKIE);
            for c in cookies {
                h.append(header::SET_COOKIE, c);
            }
        }
    }
    resp
}

/// An unknown API path answers in the API's error envelope; anything else, a short page.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        error::ApiError::NotFound(format!("no API route {}", uri.path())).into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}

/// Serve `GET /metrics` alone, behind the same sign-in (an API token as a bearer token), for
/// a process that serves nothing else — a worker's `--metrics-addr`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .with_state(state.clone());
    conn::serve(listener, app, state.config.limits.clone(), shutdown).await
}

async fn metrics(State(s): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let usage: Vec<flowbot_store::ApiUsageReading> = s
        .apps
        .api_usage()
        .into_iter()
        .map(|(app, u)| flowbot_store::ApiUsageReading {
            app,
            connection: u.connection,
            used: u.used,
            limit: u.limit,
        })
        .collect();
    match s.store.telemetry().render(&s.store, &usage).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics cannot be read from the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be reached",
            )
                .into_response()
        }
    }
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database cannot be reached",
        ),
    }
}

/// Equal-time comparison, so a token cannot be guessed from response times.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Serve until `shutdown` is cancelled, finishing requests in flight, within the
/// configured connection limits (`conn`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.config.limits.clone();
    conn::serve(listener, router(state), limits, shutdown).await
}
