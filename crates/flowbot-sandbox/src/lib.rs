//! Simulators of the outside services flowbot talks to — ecforce, Salesforce and every app
//! of the catalogue — as real HTTP servers on loopback. They are part of the product: `flowbot demo` shows the whole
//! customer sync on a fresh machine with them, and the tests and benchmarks inject faults
//! through them. Each follows the public shapes of the real API (see the README beside
//! each module) and must not merely agree with flowbot's own clients.

pub mod ai;
pub mod catalogue;
pub mod ecforce;
pub mod faults;
pub mod mail_sender;
pub mod oidc;
pub mod salesforce;
pub mod sinks;
pub mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

/// A simulator serving on loopback until dropped or stopped.
pub struct Running<S> {
    pub sim: Arc<S>,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    task: JoinHandle<()>,
}

impl<S> Running<S> {
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn serve<S: Send + Sync + 'static>(
    sim: Arc<S>,
    router: Router,
    port: u16,
    on_url: impl FnOnce(&S, &str),
) -> std::io::Result<Running<S>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    on_url(&sim, &url);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(Running {
        sim,
        addr,
        url,
        task,
    })
}
