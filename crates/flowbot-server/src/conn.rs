//! Connections: accepted, counted, timed out and, when the server is full, evicted.
//!
//! A client that opens a socket and sends nothing, trickles its headers or trickles its body
//! must not hold the server: every connection is in one of three phases, and a sweeper
//! closes it when it stays too long in a phase where the client owes us bytes
//! (`Idle` — waiting for a request's headers — and `Body`). At most `max_connections` are
//! open; a new one arriving when the server is full evicts the connection that has owed
//! bytes the longest, so a flood of silent sockets is cycled through while a client that
//! sends its request at once is served. Connections whose request is being handled
//! (`Busy`) are never evicted or timed out.
//!
//! axum's `serve` has no header, body or idle timeout and no connection limit, and no
//! crate offers eviction by phase, so the accept loop is written here on hyper directly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// How many connections, and how long each may owe us bytes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once (further capped by the open-file limit, see
    /// [`effective_max`]).
    pub max_connections: usize,
    /// From accepting a connection to the end of its first request's headers.
    pub header_timeout: Duration,
    /// From the end of a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// Between a response and the next request's headers on a kept-alive connection.
    pub idle_timeout: Duration,
    /// How long requests in flight may finish after shutdown is asked.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept back from client connections: the database pool, SQLite's
/// journal files, outgoing calls to apps and the listener itself.
pub const RESERVED_FDS: u64 = 256;

/// Raise the soft limit on open files to the hard limit (the default soft limit, often
/// 1,024, is what runs out first under many connections) and return the soft limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    let lim = fd_limits()?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct passed by pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(lim.rlim_max);
        }
    }
    Some(lim.rlim_cur)
}

/// The connections this process can hold: the configured number, but never so many that
/// the database or an outgoing call could not open a file.
pub fn effective_max(configured: usize, fd_limit: Option<u64>) -> usize {
    let by_fds = fd_limit.map_or(usize::MAX, |n| {
        n.saturating_sub(RESERVED_FDS).max(16) as usize
    });
    configured.clamp(1, by_fds.max(1))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for a request's headers (`first`: none has come yet on this connection).
    Idle { first: bool },
    /// Headers read, the body not yet.
    Body,
    /// The request is being handled.
    Busy,
}

struct Slot {
    phase: Phase,
    since: Instant,
    close: CancellationToken,
}

/// Every open connection's phase, shared by the accept loop, the sweeper and the
/// connections themselves. A std Mutex: it is held for map operations only, never across
/// an await.
#[derive(Default)]
struct Table {
    slots: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
}

impl Table {
    fn open(&self) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        self.slots.lock().expect("connections").insert(
            id,
            Slot {
                phase: Phase::Idle { first: true },
                since: Instant::now(),
                close: close.clone(),
            },
        );
        (id, close)
    }

    fn set(&self, id: u64, phase: Phase) {
        if let Some(s) = self.slots.lock().expect("connections").get_mut(&id) {
            if s.phase != phase {
                s.phase = phase;
                s.since = Instant::now();
            }
        }
    }

    fn remove(&self, id: u64) {
        self.slots.lock().expect("connections").remove(&id);
    }

    fn len(&self) -> usize {
        self.slots.lock().expect("connections").len()
    }

    /// Close the connection that has owed us bytes the longest — one still waiting for its
    /// request's headers first, then one sending a body; false when every connection is
    /// busy with a request. A client that sends its request at once spends microseconds
    /// in those phases, so it is not the one evicted.
    fn evict_one(&self) -> bool {
        let mut slots = self.slots.lock().expect("connections");
        let oldest = slots
            .iter()
            .filter(|(_, s)| s.phase != Phase::Busy)
            .min_by_key(|(_, s)| (s.phase == Phase::Body, s.since))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| slots.remove(&id)) {
            Some(s) => {
                s.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Close every connection past its phase's time limit.
    fn sweep(&self, limits: &Limits) -> usize {
        let now = Instant::now();
        let mut slots = self.slots.lock().expect("connections");
        let late: Vec<u64> = slots
            .iter()
            .filter(|(_, s)| {
                let limit = match s.phase {
                    Phase::Idle { first: true } => limits.header_timeout,
                    Phase::Idle { first: false } => limits.idle_timeout,
                    Phase::Body => limits.body_timeout,
                    Phase::Busy => return false,
                };
                now.duration_since(s.since) > limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &late {
            if let Some(s) = slots.remove(id) {
                s.close.cancel();
            }
        }
        late.len()
    }
}

/// A request body that tells the table when it has been read to its end.
struct Tracked {
    inner: Incoming,
    table: Arc<Table>,
    id: u64,
}

impl HttpBody for Tracked {
    type Data = <Incoming as HttpBody>::Data;
    type Error = <Incoming as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.table.set(self.id, Phase::Busy);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serve `router` on `listener` until `shutdown`, within `limits`. Each request carries
/// its peer's `ConnectInfo<SocketAddr>`, as axum's `serve` would add it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max = effective_max(limits.max_connections, current_fd_limit());
    let table = Arc::new(Table::default());
    let sweeper = {
        let (table, limits, stop) = (table.clone(), limits.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        let n = table.sweep(&limits);
                        if n > 0 {
                            tracing::debug!(closed = n, "connections timed out");
                        }
                    }
                }
            }
        })
    };
    let mut last_full_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (or a connection reset before it was accepted):
                // free one and breathe, rather than spin or stop serving.
                tracing::warn!(error = %e, "cannot accept a connection");
                table.evict_one();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if table.len() >= max && !table.evict_one() {
            if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    max,
                    "every connection is busy with a request; refusing new ones"
                );
                last_full_warning = Some(Instant::now());
            }
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, close) = table.open();
        let (table, router, stop) = (table.clone(), router.clone(), shutdown.clone());
        let grace = limits.shutdown_grace;
        tokio::spawn(async move {
            let svc = {
                let table = table.clone();
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (table, mut router) = (table.clone(), router.clone());
                    async move {
                        let phase = if req.body().is_end_stream() {
                            Phase::Busy
                        } else {
                            Phase::Body
                        };
                        table.set(id, phase);
                        let mut req = req.map(|inner| {
                            Body::new(Tracked {
                                inner,
                                table: table.clone(),
                                id,
                            })
                        });
                        req.extensions_mut().insert(ConnectInfo(peer));
                        // Router is always ready: `call` needs no `poll_ready` first.
                        let resp = tower_service::Service::call(&mut router, req).await;
                        table.set(id, Phase::Idle { first: false });
                        Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
                    }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = close.cancelled() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        _ = tokio::time::timeout(grace, conn.as_mut()) => {}
                        _ = close.cancelled() => {}
                    }
                }
            }
            table.remove(id);
        });
    }
    drop(listener);
    // Requests in flight finish (within the grace period); idle connections close at once.
    let deadline = Instant::now() + limits.shutdown_grace;
    while table.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sweeper.abort();
    Ok(())
}

/// The soft and hard limits on open files.
fn fd_limits() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by pointer.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

fn current_fd_limit() -> Option<u64> {
    fd_limits().map(|l| l.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_limit_leaves_room_for_the_database() {
        assert_eq!(effective_max(4096, Some(1024)), 768);
        assert_eq!(effective_max(100, Some(1024)), 100);
        assert_eq!(effective_max(4096, None), 4096);
        assert_eq!(effective_max(4096, Some(100)), 16);
    }

    #[test]
    fn eviction_takes_the_longest_owing_and_spares_busy_connections() {
        let t = Table::default();
        let (a, close_a) = t.open();
        std::thread::sleep(Duration::from_millis(2));
        let (b, close_b) = t.open();
        t.set(a, Phase::Busy);
        assert!(t.evict_one());
        assert!(close_b.is_cancelled() && !close_a.is_cancelled());
        assert_eq!(t.len(), 1);
        assert!(!t.evict_one(), "a busy connection is never evicted");
        let _ = b;
    }

    #[test]
    fn the_sweeper_closes_connections_past_their_phase_limit() {
        let t = Table::default();
        let limits = Limits {
            header_timeout: Duration::from_millis(1),
            body_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let (_, silent) = t.open();
        let (b, body) = t.open();
        t.set(b, Phase::Body);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.sweep(&limits), 1);
        assert!(silent.is_cancelled() && !body.is_cancelled());
    }
}
