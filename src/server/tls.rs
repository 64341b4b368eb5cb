//! rustls server configuration with certificates that rotate without a
//! restart. The serving pair sits in an `ArcSwap`: each new handshake takes
//! the current one, and connections already open keep theirs.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, so the
//! files are re-read on an interval and compared by content, which follows
//! the swap whatever the mechanism. A pair that does not load is logged and
//! the old one stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::{ring, CryptoProvider};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::certs::{not_after, CertificateError};
use crate::errors::Chain;
use crate::metrics::Metrics;

/// A certificate or key that cannot be served, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        problem: FileProblem,
    },
    #[error("{} and {} do not form a usable pair", .cert.display(), .key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration")]
    Config(#[from] rustls::Error),
}

/// What is wrong with one file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error("not a PEM certificate chain")]
    Chain(#[source] rustls_pki_types::pem::Error),
    #[error("no CERTIFICATE block found")]
    NoCertificate,
    #[error("no usable PEM private key")]
    Key(#[source] rustls_pki_types::pem::Error),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error(transparent)]
    Pem(rustls_pki_types::pem::Error),
    #[error("not a PEM certificate bundle")]
    Bundle(#[source] rustls_pki_types::pem::Error),
    #[error("no usable CA certificate found")]
    NoCa,
    #[error(transparent)]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, problem: impl Into<FileProblem>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The serving certificate chain and private key files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded pair, with the bytes it came from and its expiry.
pub struct LoadedPair {
    pub certified: Arc<CertifiedKey>,
    pub not_after: OffsetDateTime,
    source: (Vec<u8>, Vec<u8>),
}

impl CertFiles {
    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let cert = std::fs::read(&self.cert).map_err(|e| file_error(&self.cert, e))?;
        let key = std::fs::read(&self.key).map_err(|e| file_error(&self.key, e))?;
        Ok((cert, key))
    }

    /// Reads and checks the pair: PEM, a chain, a key that matches it.
    pub fn load(&self) -> Result<LoadedPair, TlsError> {
        let source = self.read()?;
        self.parse(source)
    }

    fn parse(&self, source: (Vec<u8>, Vec<u8>)) -> Result<LoadedPair, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&source.0)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(&self.cert, FileProblem::Chain(e)))?;
        if chain.is_empty() {
            return Err(file_error(&self.cert, FileProblem::NoCertificate));
        }
        let key = PrivateKeyDer::from_pem_slice(&source.1)
            .map_err(|e| file_error(&self.key, FileProblem::Key(e)))?;
        let not_after = not_after(&source.0).map_err(|e| file_error(&self.cert, e))?;
        let certified =
            CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Pair {
                cert: self.cert.clone(),
                key: self.key.clone(),
                source,
            })?;
        Ok(LoadedPair {
            certified: Arc::new(certified),
            not_after,
            source,
        })
    }
}

/// Hands every new handshake the current pair.
#[derive(Debug)]
pub struct RotatingResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for RotatingResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Builds the rustls configuration: TLS 1.3 and 1.2 only, ALPN h2 and
/// http/1.1, client certificates required when a client CA is given.
pub fn server_config(
    resolver: Arc<RotatingResolver>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| file_error(path, FileProblem::Pem(e)))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(path, FileProblem::Bundle(e)))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error(path, FileProblem::NoCa));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| file_error(path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Owns the current pair and swaps in new ones.
pub struct CertReloader {
    files: CertFiles,
    resolver: Arc<RotatingResolver>,
    /// The file contents last seen, loaded or not, so a bad pair is
    /// reported once rather than on every poll.
    last_seen: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
    metrics: Metrics,
}

impl CertReloader {
    /// Loads the initial pair; failing here fails start-up.
    pub fn new(files: CertFiles, metrics: Metrics) -> Result<Self, TlsError> {
        let pair = files.load()?;
        metrics.set_certificate_expiry(pair.not_after);
        Ok(CertReloader {
            files,
            resolver: Arc::new(RotatingResolver {
                current: ArcSwap::new(pair.certified),
            }),
            last_seen: std::sync::Mutex::new(pair.source),
            metrics,
        })
    }

    pub fn resolver(&self) -> Arc<RotatingResolver> {
        self.resolver.clone()
    }

    /// Re-reads the files; swaps the pair in if they changed and load.
    /// Returns whether a new pair is now served.
    pub fn reload_if_changed(&self) -> bool {
        let source = match self.files.read() {
            Ok(source) => source,
            Err(e) => {
                // Mid-swap, or the Secret is gone: keep serving the old pair.
                tracing::debug!(error = %Chain(&e), "certificate files not readable; keeping the current pair");
                return false;
            }
        };
        {
            let mut last_seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            if *last_seen == source {
                return false;
            }
            *last_seen = source.clone();
        }
        match self.files.parse(source) {
            Ok(pair) => {
                self.resolver.current.store(pair.certified);
                self.metrics.set_certificate_expiry(pair.not_after);
                self.metrics.certificate_reloaded(true);
                tracing::info!(cert = %self.files.cert.display(), not_after = %pair.not_after, "serving a new TLS certificate");
                true
            }
            Err(e) => {
                self.metrics.certificate_reloaded(false);
                tracing::error!(error = %Chain(&e), "new TLS certificate rejected; still serving the previous one");
                false
            }
        }
    }

    /// Polls the files until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let reloader = self.clone();
            // File reads are blocking; keep them off the async workers.
            let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
        }
    }
}
