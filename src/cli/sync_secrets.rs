//! `registry-rewriter sync-secrets`: the pull-secret controller.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{io_error, CliError, ConfigFileArg};
use crate::duration;
use crate::logging::{self, LogFormat};
use crate::sync_secrets;

#[derive(Args, Debug)]
pub(super) struct SyncSecretsArgs {
    /// The Secret to copy, NAMESPACE/NAME (type kubernetes.io/dockerconfigjson).
    #[arg(long, env = "REGISTRY_REWRITER_SOURCE", default_value = "registry-rewriter/registry-credentials", value_parser = parse_source)]
    source: (String, String),
    /// Only namespaces with these labels (kubectl's selector syntax), besides the
    /// webhook's exclusions and the ignore label.
    #[arg(long, env = "REGISTRY_REWRITER_NAMESPACE_SELECTOR", value_parser = parse_selector)]
    namespace_selector: Option<kube::core::Selector>,
    /// The copies are named after the configuration's first imagePullSecrets entry.
    #[command(flatten)]
    config: ConfigFileArg,
    /// Address of the plain-HTTP admin listener (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "REGISTRY_REWRITER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    admin_listen: SocketAddr,
    /// Every namespace is reconciled again after this long, whatever happens.
    #[arg(long, env = "REGISTRY_REWRITER_RESYNC", default_value = "10m", value_parser = duration::parse)]
    resync: Duration,
    /// Namespaces reconciled at once.
    #[arg(long, env = "REGISTRY_REWRITER_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Log format.
    #[arg(long, env = "REGISTRY_REWRITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn parse_source(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

fn parse_selector(text: &str) -> Result<kube::core::Selector, String> {
    sync_secrets::selector::parse(text).map_err(|e| e.to_string())
}

pub(super) fn run(args: SyncSecretsArgs) -> Result<ExitCode, CliError> {
    let _flush_logs_on_exit =
        logging::init(args.log_format).map_err(io_error("starting the log writer"))?;
    let config = args.config.load()?;
    let target_name = config
        .rules()
        .image_pull_secrets()
        .first()
        .cloned()
        .ok_or_else(|| CliError::NoPullSecret(args.config.name()))?;
    let (source_namespace, source_name) = args.source;
    let settings = sync_secrets::Settings {
        options: sync_secrets::Options {
            source_namespace,
            source_name,
            target_name,
            selector: args.namespace_selector,
        },
        admin_listen: args.admin_listen,
        resync: args.resync,
        concurrency: args.concurrency,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(io_error("starting the runtime"))?;
    runtime.block_on(sync_secrets::run(settings))?;
    Ok(ExitCode::SUCCESS)
}
