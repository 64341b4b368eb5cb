//! The HTTPS webhook endpoint and the plain-HTTP admin endpoint.
//!
//! Lifecycle: `Server::bind` loads everything and fails fast, naming the
//! file; `Server::run` serves until the shutdown future resolves, then
//! turns not-ready, keeps accepting for `shutdown_delay` (endpoints take a
//! moment to drop a terminating pod), stops accepting and drains open
//! connections within `shutdown_grace_period`.

pub mod admin;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::admission;
use crate::config::Config;
use crate::metrics::{InProgress, Metrics};
use tls::{CertFiles, CertReloader, TlsError};

/// The API server's own request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Bounds the memory a storm of connections can take: each TLS connection
/// holds about 30 KiB of buffers, so 2,048 stay well inside the manifests'
/// 128 MiB limit, where an unbounded number would end in an OOM kill. The
/// API server needs a few per replica.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// A TLS handshake is CPU work and the part of a connection's life that
/// holds the most memory. Beyond a few per core, more at once only add
/// memory: a burst of 1,000 new connections peaks at about 17 MiB with 32,
/// and at about 40 MiB with no limit, served at the same rate.
pub const DEFAULT_MAX_CONCURRENT_HANDSHAKES: usize = 32;
pub const MUTATE_PATH: &str = "/mutate";

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: CertFiles,
    pub client_ca: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Open webhook connections at most; further ones wait in the listen
    /// queue until one closes.
    pub max_connections: usize,
    /// TLS handshakes in progress at most; further connections wait their
    /// turn. A connection takes a turn once its first bytes have arrived, so
    /// idle connections hold none.
    pub max_concurrent_handshakes: usize,
    /// Whole request, below the webhook's `timeoutSeconds`.
    pub request_timeout: Duration,
    /// Slow clients may not hold a connection open with partial headers.
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_grace_period: Duration,
    pub cert_reload_interval: Duration,
}

impl ServeOptions {
    /// Production defaults around the given addresses and certificate files.
    pub fn new(listen: SocketAddr, admin_listen: SocketAddr, tls: CertFiles) -> Self {
        ServeOptions {
            listen,
            admin_listen,
            tls,
            client_ca: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_handshakes: DEFAULT_MAX_CONCURRENT_HANDSHAKES,
            request_timeout: Duration::from_secs(4),
            header_read_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::from_secs(5),
            shutdown_grace_period: Duration::from_secs(20),
            cert_reload_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Shared by every request.
pub struct AppState {
    pub config: Config,
    pub metrics: Metrics,
    pub ready: AtomicBool,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(config: Config, metrics: Metrics, max_body_bytes: usize) -> Arc<Self> {
        Arc::new(AppState {
            config,
            metrics,
            ready: AtomicBool::new(false),
            max_body_bytes,
        })
    }
}

/// A bound, loaded server that has not started serving yet.
pub struct Server {
    options: ServeOptions,
    state: Arc<AppState>,
    tls_listener: TcpListener,
    admin_listener: TcpListener,
    reloader: Arc<CertReloader>,
    acceptor: TlsAcceptor,
}

impl Server {
    pub async fn bind(options: ServeOptions, config: Config) -> Result<Self, ServeError> {
        let metrics = Metrics::new();
        let reloader = Arc::new(CertReloader::new(options.tls.clone(), metrics.clone())?);
        let tls_config = tls::server_config(reloader.resolver(), options.client_ca.as_deref())?;
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { what, addr, source })
        };
        let tls_listener = bind("the webhook listener", options.listen).await?;
        let admin_listener = bind("the admin listener", options.admin_listen).await?;
        Ok(Server {
            state: AppState::new(config, metrics, options.max_body_bytes),
            options,
            tls_listener,
            admin_listener,
            reloader,
            acceptor: TlsAcceptor::from(Arc::new(tls_config)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tls_listener
            .local_addr()
            .unwrap_or(self.options.listen)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or(self.options.admin_listen)
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            options,
            state,
            tls_listener,
            admin_listener,
            reloader,
            acceptor,
        } = self;
        let reload_task = tokio::spawn(reloader.watch(options.cert_reload_interval));

        let admin_addr = admin_listener.local_addr().unwrap_or(options.admin_listen);
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = axum::serve(admin_listener, admin::router(state.clone()))
            .with_graceful_shutdown(async {
                let _ = admin_stopped.await;
            });
        let admin_task = tokio::spawn(async move {
            if let Err(e) = admin.await {
                tracing::error!(error = %e, "admin server failed");
            }
        });

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(256);
        let connections = Connections {
            slots: Arc::new(Semaphore::new(options.max_connections.max(1))),
            max_connections: options.max_connections,
            limit_warned_at: std::sync::Mutex::new(None),
            metrics: state.metrics.clone(),
            builder: Arc::new(builder),
            handshakes: Handshakes {
                acceptor,
                turns: Arc::new(Semaphore::new(options.max_concurrent_handshakes.max(1))),
                timeout: options.tls_handshake_timeout,
                metrics: state.metrics.clone(),
            },
            app: router(state.clone(), options.request_timeout),
            drain: Drain::new(),
            first_request_grace: options.header_read_timeout,
        };

        state.ready.store(true, Ordering::SeqCst);
        let bound =
            |listener: &TcpListener, configured| listener.local_addr().unwrap_or(configured);
        tracing::info!(
            listen = %bound(&tls_listener, options.listen),
            admin = %admin_addr,
            "ready"
        );

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                (slot, accepted) = connections.next(&tls_listener) => connections.accept(slot, accepted).await,
            }
        }
        state.ready.store(false, Ordering::SeqCst);
        tracing::info!(delay = ?options.shutdown_delay, "shutting down: not ready, still accepting while endpoints update");
        let delay = tokio::time::sleep(options.shutdown_delay);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                () = &mut delay => break,
                (slot, accepted) = connections.next(&tls_listener) => connections.accept(slot, accepted).await,
            }
        }
        drop(tls_listener);
        let open = connections.drain.open();
        tracing::info!(open, grace = ?options.shutdown_grace_period, "stopped accepting; draining connections");
        match tokio::time::timeout(options.shutdown_grace_period, connections.drain.drain()).await {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
        }
        reload_task.abort();
        let _ = admin_stop.send(());
        let _ = admin_task.await;
    }
}

struct Connections {
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    max_connections: usize,
    limit_warned_at: std::sync::Mutex<Option<Instant>>,
    metrics: Metrics,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handshakes: Handshakes,
    app: Router,
    drain: Drain,
    /// How long a connection that has not sent its first request yet is
    /// given to send it once the drain has begun.
    first_request_grace: Duration,
}

/// Tells open connections to finish, and waits until they have.
struct Drain {
    signal: tokio::sync::watch::Sender<bool>,
}

impl Drain {
    fn new() -> Self {
        Drain {
            signal: tokio::sync::watch::channel(false).0,
        }
    }

    fn watcher(&self) -> tokio::sync::watch::Receiver<bool> {
        self.signal.subscribe()
    }

    /// Connections still open (each holds a watcher).
    fn open(&self) -> usize {
        self.signal.receiver_count()
    }

    async fn drain(&self) {
        let _ = self.signal.send(true);
        self.signal.closed().await;
    }
}

/// Resolves once the drain has begun (the guard is dropped before returning,
/// so the future stays Send).
async fn drain_requested(draining: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = draining.wait_for(|drain| *drain).await.map(|_| ());
}

/// How often reaching the connection limit is logged, at most.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Held by a connection's task: counted open while it lives, and its slot
/// freed and the count lowered when it ends.
struct OpenConnection {
    _slot: OwnedSemaphorePermit,
    _counted: InProgress,
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
    async fn run(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
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

impl Connections {
    /// Waits for a free slot, then for a connection: at the limit, new
    /// connections wait in the kernel's listen queue, where they cost us
    /// nothing. Cancel-safe, as `select!` needs.
    async fn next(
        &self,
        listener: &TcpListener,
    ) -> (
        OwnedSemaphorePermit,
        std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
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
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned_at.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
            *warned_at = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
        }
    }

    async fn accept(
        &self,
        slot: OwnedSemaphorePermit,
        accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
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
        let builder = self.builder.clone();
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
            let mut connection = Box::pin(builder.serve_connection(TokioIo::new(stream), service));
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

/// The webhook routes. Tests drive this directly with `oneshot`.
pub fn router(state: Arc<AppState>, request_timeout: Duration) -> Router {
    let mutate = move |State(state): State<Arc<AppState>>, request: axum::extract::Request| {
        mutate(state, request, request_timeout)
    };
    Router::new()
        .route(
            MUTATE_PATH,
            post(mutate).fallback(|| async { method_not_allowed() }),
        )
        .fallback(|| async {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such endpoint; the webhook path is /mutate",
            )
        })
        .with_state(state)
}

/// The review is CPU work with no await in it, so the request timeout only
/// needs to cover reading the body (hyper's header read timeout covers the
/// headers). No middleware layer: a boxed service and a timer per request
/// cost a measurable share of throughput.
async fn mutate(
    state: Arc<AppState>,
    request: axum::extract::Request,
    request_timeout: Duration,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !is_json(headers) {
        state.metrics.record_bad_request();
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
        );
    }
    let read = tokio::time::timeout(
        request_timeout,
        read_body(body, headers, state.max_body_bytes),
    );
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(response)) => {
            state.metrics.record_bad_request();
            return response;
        }
        Err(_) => {
            state.metrics.record_bad_request();
            return status(
                StatusCode::REQUEST_TIMEOUT,
                "Timeout",
                "the request body was not received in time",
            );
        }
    };

    let started = Instant::now();
    match admission::review(&bytes, &state.config) {
        Ok(reviewed) => {
            let elapsed = started.elapsed();
            let summary = &reviewed.summary;
            state.metrics.record_review(summary, elapsed);
            tracing::info!(
                uid = &*summary.uid,
                kind = summary.kind,
                operation = summary.operation,
                namespace = &*summary.namespace,
                name = &*summary.name,
                dry_run = summary.dry_run,
                outcome = summary.outcome.as_str(),
                changes = summary.changes.len(),
                duration_us = elapsed.as_micros() as u64,
                "admission reviewed"
            );
            json_response(StatusCode::OK, reviewed.body)
        }
        Err(e) => {
            state.metrics.record_bad_request();
            tracing::warn!(error = %e, "malformed AdmissionReview");
            status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string())
        }
    }
}

/// `application/json`, with or without parameters such as charset.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body up to `limit`. An over-limit body is still read (and
/// thrown away) up to a bound before the 413 goes out: closing a connection
/// with unread data makes the kernel reset it, and the client would lose
/// the answer (nginx calls this a lingering close). The request timeout
/// bounds the time this takes.
async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<axum::body::Bytes, Response> {
    let discard_max = limit.saturating_mul(4);
    let too_large = || {
        status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A body that arrives in one chunk (the usual case) is kept as it is;
    // only a body in several chunks is copied into one buffer.
    let mut first: Option<axum::body::Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("reading the body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            if first.is_none() && joined.is_empty() {
                first = Some(data);
            } else {
                if let Some(first) = first.take() {
                    let expected = declared.map_or(0, |d| d.min(limit as u64) as usize);
                    joined.reserve(expected.max(seen));
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&data);
            }
        } else if seen > discard_max {
            break;
        }
    }
    if seen > limit || declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}

fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (code, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A Kubernetes `Status` object, as kubectl and client libraries expect errors.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    json_response(code, body.to_string().into_bytes())
}

fn method_not_allowed() -> Response {
    let mut response = status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "use POST with an AdmissionReview",
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static(Method::POST.as_str()),
    );
    response
}
