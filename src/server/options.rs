//! What `serve` can be told, with the defaults in one place, and what can
//! stop it from starting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::tls::{CertFiles, TlsError};

/// The API server's own request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Each TLS connection holds buffers, so the count is bounded to stay
/// inside the manifests' memory limit; the API server needs a few per
/// replica (docs/performance.md has the figures).
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// A handshake is CPU work and the part of a connection's life that holds
/// the most memory; beyond a few per core, more at once only add memory.
pub const DEFAULT_MAX_CONCURRENT_HANDSHAKES: usize = 32;
/// Below the webhook configuration's `timeoutSeconds` (10).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Endpoints take a moment to drop a terminating pod.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(20);
pub const DEFAULT_CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

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
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            shutdown_delay: DEFAULT_SHUTDOWN_DELAY,
            shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE_PERIOD,
            cert_reload_interval: DEFAULT_CERT_RELOAD_INTERVAL,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {what} {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}
