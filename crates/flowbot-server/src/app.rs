//! The one assembly of a running flowbot: the HTTP server with its routes, the admin
//! account on first start, the public address, and (when asked) a worker in the same
//! process. `flowbot serve`, `flowbot demo` and the benchmarks start it this way, and so do
//! the tests (`spawn_app`-style helpers), so the wiring users run is the wiring tested.

use std::net::SocketAddr;

use flowbot_core::Apps;
use flowbot_engine::{EngineError, Worker, WorkerConfig, WorkerStats};
use flowbot_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{AppState, ServerConfig};

/// How to start: the server's settings, the in-process worker's (none: runs are executed
/// by `flowbot worker` processes), and the admin password for a first start.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    /// `public_url` None: `http://` and the address listened on.
    pub server: ServerConfig,
    pub worker: Option<WorkerConfig>,
    /// The first start's admin password; None: one is generated and returned once.
    pub admin_password: Option<String>,
}

/// Why a flowbot could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] flowbot_store::StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot create the admin account: {0}")]
    Admin(String),
    #[error("a task of the server ended abnormally: {0}")]
    Join(String),
}

/// A started flowbot. It runs until the shutdown token passed to [`App::start`] is
/// cancelled; [`App::wait`] then returns once requests in flight and runs in progress are
/// done (or released).
pub struct App {
    pub addr: SocketAddr,
    /// The address users and senders reach this server at (webhook URLs, links).
    pub public_url: String,
    pub store: Store,
    /// Set on a first start without a chosen password: shown once, only its hash is kept.
    pub generated_admin_password: Option<String>,
    /// Where the mail trigger's receiver listens, when it is on.
    pub smtp_addr: Option<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
    smtp: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<Result<WorkerStats, EngineError>>>,
}

impl App {
    pub async fn start(
        store: Store,
        apps: Apps,
        config: AppConfig,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<App, AppError> {
        let generated = crate::auth::ensure_admin(&store, config.admin_password.as_deref())
            .await
            .map_err(|e| AppError::Admin(e.to_string()))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        // Workers anywhere link to run pages through this.
        store
            .set_setting(
                flowbot_store::notify::PUBLIC_URL,
                &serde_json::json!(public_url),
                "flowbot",
            )
            .await?;
        // App files saved from the web UI, here and in every other process.
        crate::stored_apps::keep_current(store.clone(), apps.clone(), shutdown.clone()).await?;
        let worker = config.worker.map(|cfg| {
            tokio::spawn(Worker::new(store.clone(), apps.clone(), cfg).run(shutdown.clone()))
        });
        let server_config = ServerConfig {
            public_url: Some(public_url.clone()),
            ..config.server
        };
        let state = AppState::new(store.clone(), apps, server_config);
        let (smtp, smtp_addr) = match state.config.mail.clone() {
            Some(mail) => {
                let smtp_listener = tokio::net::TcpListener::bind(mail.addr).await?;
                let smtp_addr = smtp_listener.local_addr()?;
                tracing::info!(addr = %smtp_addr, domain = %mail.domain, "receiving mail");
                let task = crate::smtp::serve(smtp_listener, state.clone(), mail, shutdown.clone());
                (Some(tokio::spawn(task)), Some(smtp_addr))
            }
            None => (None, None),
        };
        let server = tokio::spawn(crate::serve(listener, state, shutdown));
        Ok(App {
            addr,
            public_url,
            store,
            generated_admin_password: generated,
            smtp_addr,
            server,
            smtp,
            worker,
        })
    }

    /// The server's base URL as this process listens on it (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wait until the server and the worker have stopped; the worker's figures, if it ran.
    pub async fn wait(self) -> Result<Option<WorkerStats>, AppError> {
        self.server
            .await
            .map_err(|e| AppError::Join(e.to_string()))??;
        if let Some(smtp) = self.smtp {
            smtp.await.map_err(|e| AppError::Join(e.to_string()))?;
        }
        match self.worker {
            Some(w) => Ok(Some(w.await.map_err(|e| AppError::Join(e.to_string()))??)),
            None => Ok(None),
        }
    }
}
