//! The HTTPS webhook endpoint and the plain-HTTP admin endpoint.
//!
//! `Server::bind` loads everything and fails fast, naming the file;
//! `Server::run` is the whole lifecycle, in order. Each concern has its
//! own file: `options` (flags, defaults, start-up errors), `state`,
//! `connections` (limits, handshakes, one task per connection), `drain`,
//! `routes` with `body` and `error_response`, and `tls` (rotation); the
//! admin port is the crate's shared [`crate::admin`].

mod body;
mod connections;
mod drain;
mod error_response;
mod options;
mod routes;
mod state;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::engine::Rules;
use crate::metrics::Metrics;
use connections::Connections;
pub use options::*;
pub use routes::{router, MUTATE_PATH};
pub use state::AppState;
use tls::CertReloader;

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
    pub async fn bind(options: ServeOptions, rules: Rules) -> Result<Self, ServeError> {
        let metrics = Metrics::new();
        let files = options.cert_files().ok_or(ServeError::NoCertificate)?;
        let reloader = Arc::new(CertReloader::new(files, metrics.clone())?);
        let tls_config = tls::server_config(reloader.resolver(), options.client_ca.as_deref())?;
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { what, addr, source })
        };
        let tls_listener = bind("the webhook listener", options.listen).await?;
        let admin_listener = bind("the admin listener", options.admin_listen).await?;
        Ok(Server {
            state: AppState::new(rules, metrics, options.max_body_bytes),
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

    /// Serves until `shutdown` resolves; then turns not-ready, keeps
    /// accepting for `shutdown_delay` while endpoints update, stops
    /// accepting and drains open connections within `shutdown_grace_period`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (listen, admin) = (self.local_addr(), self.admin_addr());
        let Server {
            options,
            state,
            tls_listener,
            admin_listener,
            reloader,
            acceptor,
        } = self;
        let reloading = tokio::spawn(reloader.watch(options.cert_reload_interval));
        let admin_server = admin::spawn(admin_listener, state.clone());
        let app = router(state.clone(), options.request_timeout);
        let connections = Connections::new(&options, acceptor, app, state.metrics.clone());

        state.ready.store(true, Ordering::SeqCst);
        tracing::info!(%listen, %admin, "ready");
        connections.accept_until(&tls_listener, shutdown).await;

        state.ready.store(false, Ordering::SeqCst);
        tracing::info!(delay = ?options.shutdown_delay, "shutting down: not ready, still accepting while endpoints update");
        let delay = tokio::time::sleep(options.shutdown_delay);
        connections.accept_until(&tls_listener, delay).await;
        drop(tls_listener);

        let open = connections.drain.open();
        tracing::info!(open, grace = ?options.shutdown_grace_period, "stopped accepting; draining connections");
        match tokio::time::timeout(options.shutdown_grace_period, connections.drain.drain()).await {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
        }
        reloading.abort();
        admin_server.stop().await;
    }
}
