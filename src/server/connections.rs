//! Accepting webhook connections within two limits: open connections (the
//! rest wait in the kernel's listen queue, where they cost us nothing) and
//! TLS handshakes in progress. Each connection is served on its own task
//! until it closes or the drain ends it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::drain::{drain_requested, Drain};
use super::options::ServeOptions;
use crate::metrics::{InProgress, Metrics};

/// How often reaching the connection limit is logged, at most.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

pub(super) struct Connections {
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    max_connections: usize,
    limit_warned_at: Mutex<Option<Instant>>,
    metrics: Metrics,
    http: Arc<auto::Builder<TokioExecutor>>,
    handshakes: Handshakes,
    app: Router,
    pub drain: Drain,
    /// How long a connection that has not sent its first request yet is
    /// given to send it once the drain has begun.
    first_request_grace: Duration,
}

/// Held by a connection's task: counted open while it lives, and its slot
/// freed and the count lowered when it ends.
struct OpenConnection {
    _slot: OwnedSemaphorePermit,
    _counted: InProgress,
}

impl Connections {
    pub fn new(
        options: &ServeOptions,
        acceptor: TlsAcceptor,
        app: Router,
        metrics: Metrics,
    ) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(256);
        Connections {
            slots: Arc::new(Semaphore::new(options.max_connections.max(1))),
            max_connections: options.max_connections,
            limit_warned_at: Mutex::new(None),
            http: Arc::new(http),
            handshakes: Handshakes {
                acceptor,
                turns: Arc::new(Semaphore::new(options.max_concurrent_handshakes.max(1))),
                timeout: options.tls_handshake_timeout,
                metrics: metrics.clone(),
            },
            metrics,
            app,
            drain: Drain::new(),
            first_request_grace: options.header_read_timeout,
        }
    }

    /// Accepts and serves connections until `stop` resolves.
    pub async fn accept_until(&self, listener: &TcpListener, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                (slot, accepted) = self.next(listener) => self.serve(slot, accepted).await,
            }
        }
    }

    /// Waits for a free slot, then for a connection. Cancel-safe, as
    /// `select!` needs.
    async fn next(
        &self,
        listener: &TcpListener,
    ) -> (
        OwnedSemaphorePermit,
        std::io::Result<(TcpStream, SocketAddr)>,
    ) {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.warn_limit_reached();
                match self.slots.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    // The semaphore is never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        (slot, listener.accept().await)
    }

    fn warn_limit_reached(&self) {
        let mut warned_at = self
            .limit_warned_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if warned_at.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
            *warned_at = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
        }
    }

    async fn serve(
        &self,
        slot: OwnedSemaphorePermit,
        accepted: std::io::Result<(TcpStream, SocketAddr)>,
    ) {
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let open = OpenConnection {
            _slot: slot,
            _counted: self.metrics.connection_opened(),
        };
        let mut draining = self.drain.watcher();
        let handshakes = self.handshakes.clone();
        let http = self.http.clone();
        let app = self.app.clone();
        let first_request_grace = self.first_request_grace;
        tokio::spawn(async move {
            let _open = open;
            let Some(stream) = handshakes.run(tcp, peer).await else {
                return;
            };
            let first_request = Arc::new(tokio::sync::Notify::new());
            let served = Arc::new(AtomicBool::new(false));
            let service = {
                let (first_request, served) = (first_request.clone(), served.clone());
                hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    if !served.swap(true, Ordering::Relaxed) {
                        first_request.notify_one();
                    }
                    tower::ServiceExt::oneshot(app.clone(), request)
                })
            };
            // Boxed: a connection waiting for its handshake turn then holds
            // a small task, not the whole HTTP state.
            let mut connection = Box::pin(http.serve_connection(TokioIo::new(stream), service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = drain_requested(&mut draining) => {
                    // A client that has just finished its handshake is about
                    // to send a request; closing now would drop it. Such a
                    // connection gets a moment to deliver it.
                    if !served.load(Ordering::Relaxed) {
                        let first = first_request.notified();
                        let _ = tokio::time::timeout(first_request_grace, async {
                            tokio::select! {
                                _ = first => {}
                                _ = connection.as_mut() => {}
                            }
                        })
                        .await;
                    }
                    // Finishes what is in flight, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// TLS handshakes, a bounded number at a time.
#[derive(Clone)]
struct Handshakes {
    acceptor: TlsAcceptor,
    /// One permit per handshake in progress.
    turns: Arc<Semaphore>,
    timeout: Duration,
    metrics: Metrics,
}

impl Handshakes {
    /// Waits for the client's first bytes, then for a turn, then shakes
    /// hands. The timeouts bound the client's part; the wait for a turn is
    /// ours, and each turn ahead ends within the timeout.
    async fn run(&self, tcp: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
        // `peek`, not `readable`: the latter may wake before any byte is there.
        if tokio::time::timeout(self.timeout, tcp.peek(&mut [0; 1]))
            .await
            .is_err()
        {
            tracing::debug!(%peer, "TLS handshake timed out: the client sent nothing");
            return None;
        }
        let _turn = self.turns.acquire().await.ok()?;
        let _counted = self.metrics.handshake_started();
        match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}
