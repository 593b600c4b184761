//! flowbot's HTTP server. For now: durable webhook ingress and health checks; the REST API
//! and the web UI come next.
//!
//! **Invariant:** a webhook is answered 2xx only after its event and run are committed; when
//! they cannot be stored the answer is 503, so the sender retries. Only this crate knows
//! HTTP.

mod api;
pub mod auth;
mod editor;
mod error;
mod ingress;
pub mod openapi;
pub mod setup;
mod ui;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use flowbot_core::Apps;
use flowbot_store::{FlowCache, Store};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Larger webhook bodies are refused with 413.
    pub max_body: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: 1024 * 1024,
        }
    }
}

type Captures = Arc<Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<serde_json::Value>>>>>;
type PendingOauth = Arc<Mutex<HashMap<String, (String, String, String)>>>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub apps: Apps,
    pub config: ServerConfig,
    pub(crate) flows: FlowCache,
    pub(crate) limiter: Arc<auth::LoginLimiter>,
    /// (id, YAML) of the built-in templates.
    pub(crate) templates: Vec<(&'static str, &'static str)>,
    /// "Test trigger": callers waiting for the next request to a flow's webhook.
    pub(crate) captures: Captures,
    /// OAuth connections under way: state → (connection id, PKCE verifier, redirect URI).
    pub(crate) oauth: PendingOauth,
    pub(crate) http: reqwest::Client,
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
        AppState {
            store,
            apps,
            config,
            flows: FlowCache::default(),
            limiter: Arc::default(),
            captures: Arc::default(),
            oauth: Arc::default(),
            http: reqwest::Client::new(),
            templates: flowbot_connectors::templates::TEMPLATES
                .iter()
                .map(|t| (t.id, t.yaml))
                .collect(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let protected = api::protected()
        .merge(editor::routes())
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .merge(protected)
        .merge(api::public())
        .merge(ui::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/hooks/{flow_id}/{token}",
            // Ingress applies the size limit itself, so an oversized body is answered 413
            // rather than cut off mid-upload.
            post(ingress::webhook).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .with_state(state)
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
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
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

/// Serve until `shutdown` is cancelled, finishing requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
