//! `registry-rewriter serve`: the webhook, until SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{io_error, CliError, ConfigFileArg};
use crate::certs;
use crate::logging::{self, LogFormat};
use crate::server::tls::CertFiles;
use crate::server::{ServeOptions, Server, MUTATE_PATH};

/// Where `serve` keeps development certificates when no TLS files are given.
const DEVELOPMENT_CERTS_DIR: &str = "certs";

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    options: ServeOptions,
    #[command(flatten)]
    config: ConfigFileArg,
    /// Log format.
    #[arg(long, env = "REGISTRY_REWRITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub(super) fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let _flush_logs_on_exit =
        logging::init(args.log_format).map_err(io_error("starting the log writer"))?;
    let rules = args.config.load()?.into_rules();
    let mut options = args.options;
    if options.cert_files().is_none() {
        let files = development_certs(options.listen)?;
        options = options.with_tls(files);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_error("starting the runtime"))?;
    runtime.block_on(async {
        let server = Server::bind(options, rules).await?;
        server.run(shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// No TLS files given: make (or reuse) development certificates in ./certs.
fn development_certs(listen: SocketAddr) -> Result<CertFiles, CliError> {
    let dir = Path::new(DEVELOPMENT_CERTS_DIR);
    let found = certs::ensure_development_certs(dir)?;
    tracing::warn!(
        dir = %dir.display(),
        created = found.created,
        "no --tls-cert/--tls-key given: serving the certificates in ./certs"
    );
    if !found.covers_localhost {
        tracing::warn!(
            "{}/{} is not valid for localhost and 127.0.0.1, so local clients will not verify it; \
             regenerate with `registry-rewriter certs --out certs --dns localhost --ip 127.0.0.1` (just certs does)",
            dir.display(),
            certs::CERT_FILE
        );
    }
    tracing::info!(
        "try: curl --cacert {}/ca.crt -H 'Content-Type: application/json' --data @tests/fixtures/pod-create-from-deployment.json https://localhost:{}{MUTATE_PATH}",
        dir.display(),
        listen.port()
    );
    Ok(CertFiles {
        cert: dir.join(certs::CERT_FILE),
        key: dir.join(certs::KEY_FILE),
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
