//! What `serve` can be told: each knob once, with its default, its help and
//! its environment variable; and what can stop the server from starting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};

use super::tls::{CertFiles, TlsError};
use crate::duration;

/// The API server's own request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Args, Debug, Clone)]
pub struct ServeOptions {
    /// Address of the HTTPS webhook listener.
    #[arg(long, env = "REGISTRY_REWRITER_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "REGISTRY_REWRITER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,
    /// Serving certificate (PEM chain). Without it, development certificates are made in ./certs.
    #[arg(long, env = "REGISTRY_REWRITER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving private key (PEM).
    #[arg(long, env = "REGISTRY_REWRITER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (mTLS from the API server).
    #[arg(long, env = "REGISTRY_REWRITER_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Largest AdmissionReview accepted, in bytes (the API server's own limit by default).
    #[arg(long, env = "REGISTRY_REWRITER_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Open webhook connections at most; more wait in the listen queue until one closes.
    // Each TLS connection holds buffers, so the count is bounded to stay
    // inside the manifests' memory limit (docs/performance.md).
    #[arg(long, env = "REGISTRY_REWRITER_MAX_CONNECTIONS", default_value_t = 2048, value_parser = at_least_one)]
    pub max_connections: usize,
    /// TLS handshakes in progress at most; more wait their turn (idle connections do not take one).
    // A handshake is CPU work; beyond a few per core, more at once only add memory.
    #[arg(long, env = "REGISTRY_REWRITER_MAX_CONCURRENT_HANDSHAKES", default_value_t = 32, value_parser = at_least_one)]
    pub max_concurrent_handshakes: usize,
    /// Time allowed for a whole request; keep it below the webhook's timeoutSeconds.
    #[arg(long, env = "REGISTRY_REWRITER_REQUEST_TIMEOUT", default_value = "4s", value_parser = duration::parse)]
    pub request_timeout: Duration,
    /// Time allowed to send the request headers.
    #[arg(long, env = "REGISTRY_REWRITER_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub header_read_timeout: Duration,
    /// Time allowed for the TLS handshake.
    #[arg(long, env = "REGISTRY_REWRITER_TLS_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub tls_handshake_timeout: Duration,
    /// After SIGTERM, time spent not-ready but still accepting, while endpoints update.
    #[arg(long, env = "REGISTRY_REWRITER_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration::parse)]
    pub shutdown_delay: Duration,
    /// After that, time allowed for open connections to finish.
    #[arg(long, env = "REGISTRY_REWRITER_SHUTDOWN_GRACE_PERIOD", default_value = "20s", value_parser = duration::parse)]
    pub shutdown_grace_period: Duration,
    /// How often the certificate files are checked for rotation.
    #[arg(long, env = "REGISTRY_REWRITER_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = duration::parse)]
    pub cert_reload_interval: Duration,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The options alone, for [`ServeOptions::new`].
#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    options: ServeOptions,
}

impl ServeOptions {
    /// The flags' defaults around the given addresses and certificate files,
    /// whatever the environment holds.
    pub fn new(listen: SocketAddr, admin_listen: SocketAddr, tls: CertFiles) -> Self {
        let command = <Defaults as clap::CommandFactory>::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["serve"]);
        let mut options = ServeOptions::from_arg_matches(&matches)
            .expect("the defaults are valid options")
            .with_tls(tls);
        options.listen = listen;
        options.admin_listen = admin_listen;
        options
    }

    /// The same options, serving `tls`.
    pub fn with_tls(mut self, tls: CertFiles) -> Self {
        self.tls_cert = Some(tls.cert);
        self.tls_key = Some(tls.key);
        self
    }

    /// The serving pair, when both files are given.
    pub fn cert_files(&self) -> Option<CertFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
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
    #[error("no serving certificate: give --tls-cert and --tls-key")]
    NoCertificate,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_flags_defaults() {
        let files = CertFiles {
            cert: "tls.crt".into(),
            key: "tls.key".into(),
        };
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let options = ServeOptions::new(addr, addr, files);
        assert_eq!(options.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(options.request_timeout, Duration::from_secs(4));
        assert_eq!(options.shutdown_grace_period, Duration::from_secs(20));
        assert_eq!(options.cert_files().unwrap().key, PathBuf::from("tls.key"));
    }
}
