//! The `registry-rewriter` command: thin wiring over the library.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use registry_rewriter::certs::{self, CertRequest, CertsError, GeneratedCerts};
use registry_rewriter::config::{Config, ConfigLoadError};
use registry_rewriter::errors::Chain;
use registry_rewriter::logging::{self, LogFormat};
use registry_rewriter::policy;
use registry_rewriter::preview::{self, Kinds, PreviewError};
use registry_rewriter::server::tls::CertFiles;
use registry_rewriter::server::{self, ServeError, ServeOptions, Server, MUTATE_PATH};
use registry_rewriter::sync_secrets;

/// Where `serve` keeps development certificates when no TLS files are given.
const DEVELOPMENT_CERTS_DIR: &str = "certs";

#[derive(Parser, Debug)]
#[command(
    name = "registry-rewriter",
    version,
    about = "Kubernetes mutating admission webhook: moves images and Kaniko builds from the in-cluster HTTP registry to its HTTPS endpoint",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the webhook over HTTPS, and /livez, /readyz and /metrics on the admin port.
    Serve(ServeArgs),
    /// Show what admission would do to manifests, offline (like `kubectl apply --dry-run`).
    Mutate(MutateArgs),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(CertsArgs),
    /// Print the effective configuration (built-in defaults merged with --config).
    Config(ConfigArgs),
    /// Print the rules as MutatingAdmissionPolicies and their bindings, for
    /// `kubectl apply -f -` (no webhook needed on Kubernetes 1.36 and later).
    Policy(PolicyArgs),
    /// Keep a copy of the pull secret in every namespace (a controller; run it as its own Deployment).
    SyncSecrets(SyncSecretsArgs),
}

#[derive(Args, Debug)]
struct ConfigFileArg {
    /// Configuration file (YAML); built-in defaults apply when absent.
    #[arg(long, env = "REGISTRY_REWRITER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address of the HTTPS webhook listener.
    #[arg(long, env = "REGISTRY_REWRITER_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "REGISTRY_REWRITER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    admin_listen: SocketAddr,
    /// Serving certificate (PEM chain). Without it, development certificates are made in ./certs.
    #[arg(long, env = "REGISTRY_REWRITER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serving private key (PEM).
    #[arg(long, env = "REGISTRY_REWRITER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (mTLS from the API server).
    #[arg(long, env = "REGISTRY_REWRITER_CLIENT_CA", value_name = "FILE")]
    client_ca: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigFileArg,
    /// Log format.
    #[arg(long, env = "REGISTRY_REWRITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Largest AdmissionReview accepted, in bytes (the API server's own limit by default).
    #[arg(long, env = "REGISTRY_REWRITER_MAX_BODY_BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Open webhook connections at most; more wait in the listen queue until one closes.
    #[arg(long, env = "REGISTRY_REWRITER_MAX_CONNECTIONS", default_value_t = server::DEFAULT_MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// TLS handshakes in progress at most; more wait their turn (idle connections do not take one).
    #[arg(long, env = "REGISTRY_REWRITER_MAX_CONCURRENT_HANDSHAKES", default_value_t = server::DEFAULT_MAX_CONCURRENT_HANDSHAKES as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_handshakes: u32,
    /// Time allowed for a whole request; keep it below the webhook's timeoutSeconds.
    #[arg(long, env = "REGISTRY_REWRITER_REQUEST_TIMEOUT", default_value_t = Wait(server::DEFAULT_REQUEST_TIMEOUT))]
    request_timeout: Wait,
    /// Time allowed to send the request headers.
    #[arg(long, env = "REGISTRY_REWRITER_HEADER_READ_TIMEOUT", default_value_t = Wait(server::DEFAULT_HEADER_READ_TIMEOUT))]
    header_read_timeout: Wait,
    /// Time allowed for the TLS handshake.
    #[arg(long, env = "REGISTRY_REWRITER_TLS_HANDSHAKE_TIMEOUT", default_value_t = Wait(server::DEFAULT_TLS_HANDSHAKE_TIMEOUT))]
    tls_handshake_timeout: Wait,
    /// After SIGTERM, time spent not-ready but still accepting, while endpoints update.
    #[arg(long, env = "REGISTRY_REWRITER_SHUTDOWN_DELAY", default_value_t = Wait(server::DEFAULT_SHUTDOWN_DELAY))]
    shutdown_delay: Wait,
    /// After that, time allowed for open connections to finish.
    #[arg(long, env = "REGISTRY_REWRITER_SHUTDOWN_GRACE_PERIOD", default_value_t = Wait(server::DEFAULT_SHUTDOWN_GRACE_PERIOD))]
    shutdown_grace_period: Wait,
    /// How often the certificate files are checked for rotation.
    #[arg(long, env = "REGISTRY_REWRITER_CERT_RELOAD_INTERVAL", default_value_t = Wait(server::DEFAULT_CERT_RELOAD_INTERVAL))]
    cert_reload_interval: Wait,
}

#[derive(Args, Debug)]
struct MutateArgs {
    /// Manifests to read (YAML or JSON, several documents, kind: List): files,
    /// directories (their .yaml, .yml and .json files), or - for stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        default_value = "-",
        value_name = "FILE"
    )]
    files: Vec<String>,
    /// Read directories given with -f recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    #[command(flatten)]
    config: ConfigFileArg,
    /// Output: the admitted documents as yaml or json, each document's JSON
    /// Patch, or a table of the changes (which covers every kind with a pod
    /// template, for audits).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = MutateOutput::Yaml)]
    output: MutateOutput,
    /// Exit 1 when anything would change and 0 when nothing would, as
    /// `kubectl diff` does; above 1 on an error.
    #[arg(long)]
    exit_code: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MutateOutput {
    Yaml,
    Json,
    Patch,
    Table,
}

/// `--exit-code`: something would change.
const EXIT_CHANGES: u8 = 1;
/// `--exit-code`: the run failed.
const EXIT_ERROR: u8 = 2;

#[derive(Args, Debug)]
struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, default_value = "registry-rewriter")]
    service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "registry-rewriter")]
    namespace: String,
    /// Directory for ca.crt, tls.crt and tls.key.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Extra DNS name for the serving certificate (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// Extra IP address for the serving certificate (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    ip: Vec<IpAddr>,
    /// Validity of the certificates, in days.
    #[arg(long, default_value_t = 365)]
    valid_days: u32,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ConfigOutput::Yaml)]
    output: ConfigOutput,
}

#[derive(Args, Debug)]
struct PolicyArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// admissionregistration.k8s.io version: v1 (Kubernetes 1.36 and later) or
    /// v1beta1 (1.34 and 1.35, with the MutatingAdmissionPolicy feature gate).
    #[arg(long, value_enum, default_value_t = PolicyApiVersion::V1)]
    api_version: PolicyApiVersion,
    /// Output format: YAML documents, or a JSON List.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ConfigOutput::Yaml)]
    output: ConfigOutput,
}

#[derive(Args, Debug)]
struct SyncSecretsArgs {
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
    #[arg(long, env = "REGISTRY_REWRITER_RESYNC", default_value_t = Wait(Duration::from_secs(600)))]
    resync: Wait,
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PolicyApiVersion {
    V1,
    V1beta1,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ConfigOutput {
    Yaml,
    Json,
}

/// A duration flag: `500ms`, `10s`, `2m`; a bare number is seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait(Duration);

impl std::str::FromStr for Wait {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
        match unit {
            "ms" => Ok(Wait(Duration::from_millis(number))),
            "" | "s" => Ok(Wait(Duration::from_secs(number))),
            "m" => Ok(Wait(Duration::from_secs(number * 60))),
            _ => Err(format!("{text:?}: unknown unit {unit:?}; use ms, s or m")),
        }
    }
}

/// Written back the way it is read, for `--help`'s defaults.
impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0.subsec_millis(), self.0.as_secs()) {
            (0, seconds) if seconds > 0 && seconds % 60 == 0 => write!(f, "{}m", seconds / 60),
            (0, seconds) => write!(f, "{seconds}s"),
            _ => write!(f, "{}ms", self.0.as_millis()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Mutate(args) if args.exit_code => {
            return mutate(args).unwrap_or_else(|error| {
                eprintln!("error: {}", Chain(&error));
                ExitCode::from(EXIT_ERROR)
            })
        }
        Command::Mutate(args) => mutate(args),
        Command::Certs(args) => generate_certs(args),
        Command::Config(args) => print_config(args),
        Command::Policy(args) => print_policy(args),
        Command::SyncSecrets(args) => sync(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", Chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Everything that can stop a command, each with its cause.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigLoadError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error("{source_name}")]
    Preview {
        source_name: String,
        #[source]
        source: PreviewError,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] registry_rewriter::policy::PolicyError),
    #[error(transparent)]
    Sync(#[from] sync_secrets::SyncError),
    #[error("{}: imagePullSecrets is empty, so there is no name for the copies", .0)]
    NoPullSecret(String),
    #[error("writing the output")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("writing the output")]
    Json(#[from] serde_json::Error),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

fn load_config(arg: &ConfigFileArg) -> Result<Config, CliError> {
    match &arg.config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    let _flush_logs_on_exit =
        logging::init(args.log_format).map_err(io_error("starting the log writer"))?;
    let config = load_config(&args.config)?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => CertFiles { cert, key },
        _ => development_certs(args.listen)?,
    };
    let mut options = ServeOptions::new(args.listen, args.admin_listen, tls);
    options.client_ca = args.client_ca;
    options.max_body_bytes = args.max_body_bytes;
    options.max_connections = args.max_connections as usize;
    options.max_concurrent_handshakes = args.max_concurrent_handshakes as usize;
    options.request_timeout = args.request_timeout.0;
    options.header_read_timeout = args.header_read_timeout.0;
    options.tls_handshake_timeout = args.tls_handshake_timeout.0;
    options.shutdown_delay = args.shutdown_delay.0;
    options.shutdown_grace_period = args.shutdown_grace_period.0;
    options.cert_reload_interval = args.cert_reload_interval.0;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_error("starting the runtime"))?;
    runtime.block_on(async {
        let server = Server::bind(options, config).await?;
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
        "try: curl --cacert {}/ca.crt -H 'Content-Type: application/json' --data @review.json https://localhost:{}{MUTATE_PATH}",
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

fn mutate(args: MutateArgs) -> Result<ExitCode, CliError> {
    let config = load_config(&args.config)?;
    // A table is an audit: it follows every kind's pod template.
    let kinds = match args.output {
        MutateOutput::Table => Kinds::Every,
        _ => Kinds::Enabled,
    };
    let mut previewed = Vec::new();
    for source_name in sources(&args.files, args.recursive)? {
        let (shown_name, reader): (String, Box<dyn std::io::Read>) = if source_name == "-" {
            ("stdin".to_owned(), Box::new(std::io::stdin().lock()))
        } else {
            let file = std::fs::File::open(&source_name).map_err(io_error(&source_name))?;
            (source_name, Box::new(file))
        };
        let mut reader = std::io::BufReader::new(reader);
        let in_source = |source| CliError::Preview {
            source_name: shown_name.clone(),
            source,
        };
        // An audit of `kubectl get -o json` reads a List item by item.
        if kinds == Kinds::Every && starts_with_brace(&mut reader).map_err(io_error(&shown_name))? {
            preview::stream_json(reader, &config, kinds, |document| previewed.push(document))
                .map_err(in_source)?;
            continue;
        }
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(io_error(&shown_name))?;
        let documents = preview::read_documents(&text).map_err(in_source)?;
        previewed.extend(preview::preview(documents, &config, kinds).map_err(in_source)?);
    }

    let mut stderr = std::io::stderr().lock();
    for document in &previewed {
        // A table says the same as these lines.
        if kinds != Kinds::Every {
            for change in &document.changes {
                let _ = writeln!(stderr, "{}: {}", document.name, change.message);
            }
        }
        for warning in &document.warnings {
            let _ = writeln!(stderr, "{}: warning: {warning}", document.name);
        }
    }
    let _ = writeln!(stderr, "{}", preview::summary(&previewed));
    let output = match args.output {
        MutateOutput::Yaml => {
            let mut out = String::new();
            for (i, document) in previewed.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml_ng::to_string(&document.admitted)?);
            }
            out
        }
        MutateOutput::Json => {
            let value = match previewed.as_slice() {
                [single] => single.admitted.clone(),
                many => serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": many.iter().map(|d| d.admitted.clone()).collect::<Vec<_>>(),
                }),
            };
            serde_json::to_string_pretty(&value)? + "\n"
        }
        // One JSON Patch per line, per input document (`[]` when unchanged).
        MutateOutput::Patch => previewed
            .iter()
            .map(|d| serde_json::to_string(&d.patch).map(|p| p + "\n"))
            .collect::<Result<String, _>>()?,
        MutateOutput::Table => {
            let rows: Vec<preview::Row> = previewed.iter().flat_map(|d| d.rows.clone()).collect();
            preview::table(&rows)
        }
    };
    std::io::stdout()
        .write_all(output.as_bytes())
        .map_err(io_error("writing the output"))?;
    let changes = previewed.iter().any(|d| d.changed_objects > 0);
    Ok(match (args.exit_code, changes) {
        (true, true) => ExitCode::from(EXIT_CHANGES),
        _ => ExitCode::SUCCESS,
    })
}

/// Whether the text starts, after white space, with `{` (JSON).
fn starts_with_brace(reader: &mut impl std::io::BufRead) -> std::io::Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        let Some(position) = buffer.iter().position(|b| !b.is_ascii_whitespace()) else {
            if buffer.is_empty() {
                return Ok(false);
            }
            let length = buffer.len();
            reader.consume(length);
            continue;
        };
        let first = buffer[position];
        reader.consume(position);
        return Ok(first == b'{');
    }
}

/// What `-f` names, as kubectl reads it: a file, `-`, or a directory's
/// `.yaml`, `.yml` and `.json` files in name order (with `-R`, its
/// subdirectories' too).
fn sources(given: &[String], recursive: bool) -> Result<Vec<String>, CliError> {
    fn walk(dir: &Path, recursive: bool, found: &mut Vec<String>) -> Result<(), CliError> {
        let what = || dir.display().to_string();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_error(what()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_error(what()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                if recursive {
                    walk(&path, recursive, found)?;
                }
            } else if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                found.push(path.display().to_string());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for name in given {
        let path = Path::new(name);
        if name != "-" && path.is_dir() {
            walk(path, recursive, &mut found)?;
        } else {
            found.push(name.clone());
        }
    }
    Ok(found)
}

fn generate_certs(args: CertsArgs) -> Result<ExitCode, CliError> {
    let request = CertRequest {
        service: args.service,
        namespace: args.namespace,
        extra_dns: args.dns,
        extra_ips: args.ip,
        valid_days: args.valid_days,
    };
    let generated = GeneratedCerts::generate(&request)?;
    generated.write_to(&args.out)?;
    eprintln!(
        "wrote {dir}/{}, {dir}/{} and {dir}/{} for {}",
        certs::CA_FILE,
        certs::CERT_FILE,
        certs::KEY_FILE,
        request.dns_names().join(", "),
        dir = args.out.display()
    );
    eprintln!("caBundle for the MutatingWebhookConfiguration:");
    println!("{}", generated.ca_bundle());
    Ok(ExitCode::SUCCESS)
}

fn print_config(args: ConfigArgs) -> Result<ExitCode, CliError> {
    let config = load_config(&args.config)?;
    let text = match args.output {
        ConfigOutput::Yaml => serde_yaml_ng::to_string(config.file())?,
        ConfigOutput::Json => serde_json::to_string_pretty(config.file())? + "\n",
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn sync(args: SyncSecretsArgs) -> Result<ExitCode, CliError> {
    let _flush_logs_on_exit =
        logging::init(args.log_format).map_err(io_error("starting the log writer"))?;
    let config = load_config(&args.config)?;
    let target_name = config
        .image_pull_secrets()
        .first()
        .cloned()
        .ok_or_else(|| CliError::NoPullSecret(config_name(&args.config)))?;
    let (source_namespace, source_name) = args.source;
    let settings = sync_secrets::Settings {
        options: sync_secrets::Options {
            source_namespace,
            source_name,
            target_name,
            selector: args.namespace_selector,
        },
        admin_listen: args.admin_listen,
        resync: args.resync.0,
        concurrency: args.concurrency,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(io_error("starting the runtime"))?;
    runtime.block_on(sync_secrets::run(settings))?;
    Ok(ExitCode::SUCCESS)
}

fn config_name(arg: &ConfigFileArg) -> String {
    arg.config.as_ref().map_or_else(
        || "the built-in configuration".to_owned(),
        |p| p.display().to_string(),
    )
}

fn print_policy(args: PolicyArgs) -> Result<ExitCode, CliError> {
    let config = load_config(&args.config)?;
    let version = match args.api_version {
        PolicyApiVersion::V1 => policy::ApiVersion::V1,
        PolicyApiVersion::V1beta1 => policy::ApiVersion::V1beta1,
    };
    let objects = policy::render(&config, version)?;
    let text = match args.output {
        ConfigOutput::Yaml => {
            let mut text = String::new();
            for object in &objects {
                text.push_str("---\n");
                text.push_str(&serde_yaml_ng::to_string(object)?);
            }
            text
        }
        ConfigOutput::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list)? + "\n"
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse_duration(text: &str) -> Result<Duration, String> {
        text.parse::<Wait>().map(|wait| wait.0)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn durations_are_shown_as_they_are_read() {
        for text in ["500ms", "4s", "0s", "2m", "90s"] {
            assert_eq!(text.parse::<Wait>().unwrap().to_string(), text);
        }
    }
}
