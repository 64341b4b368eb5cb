//! The `registry-rewriter` command line: one file per command, each a thin
//! layer over the library. Options derive clap once, next to what they
//! configure (`server::ServeOptions`); the writers shared by the commands
//! that print objects are in `output`.

mod certs;
mod config;
mod guard;
mod mutate;
mod output;
mod policy;
mod serve;
mod sync_secrets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::certs::CertsError;
use crate::config::{Config, ConfigLoadError};
use crate::errors::Chain;
use crate::preview::InputError;
use crate::server::ServeError;

#[derive(Parser, Debug)]
#[command(
    name = "registry-rewriter",
    version,
    about = "Kubernetes mutating admission webhook: moves images and image builds (Kaniko, BuildKit, Buildah) from the in-cluster HTTP registry to its HTTPS endpoint",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the webhook over HTTPS, and /livez, /readyz and /metrics on the admin port.
    Serve(serve::ServeArgs),
    /// Show what admission would do to manifests, offline (like `kubectl apply --dry-run`).
    Mutate(mutate::MutateArgs),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(certs::CertsArgs),
    /// Print the effective configuration (built-in defaults merged with --config).
    Config(config::ConfigArgs),
    /// Print the rules as MutatingAdmissionPolicies and their bindings, for
    /// `kubectl apply -f -` (no webhook needed on Kubernetes 1.36 and later).
    Policy(policy::PolicyArgs),
    /// Print ValidatingAdmissionPolicies that warn about (or, with --deny,
    /// refuse) what is still on the internal registry after every back end.
    Guard(guard::GuardArgs),
    /// Keep a copy of the pull secret in every namespace (a controller; run it as its own Deployment).
    SyncSecrets(sync_secrets::SyncSecretsArgs),
}

/// Parses the command line and runs the command; the exit code says how it went.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Mutate(args) if args.exit_code => {
            return mutate::run(args).unwrap_or_else(|error| {
                eprintln!("error: {}", Chain(&error));
                ExitCode::from(mutate::EXIT_ERROR)
            })
        }
        Command::Mutate(args) => mutate::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Config(args) => config::run(args),
        Command::Policy(args) => policy::run(args),
        Command::Guard(args) => guard::run(args),
        Command::SyncSecrets(args) => sync_secrets::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", Chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// `--config`, shared by every command that reads the rules.
#[derive(Args, Debug)]
struct ConfigFileArg {
    /// Configuration file (YAML); built-in defaults apply when absent.
    #[arg(long, env = "REGISTRY_REWRITER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigFileArg {
    fn load(&self) -> Result<Config, CliError> {
        match &self.config {
            Some(path) => Ok(Config::load(path)?),
            None => Ok(Config::default()),
        }
    }

    /// The file's name, or what stands in for it, for messages.
    fn name(&self) -> String {
        self.config.as_ref().map_or_else(
            || "the built-in configuration".to_owned(),
            |p| p.display().to_string(),
        )
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
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Sync(#[from] crate::sync_secrets::SyncError),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
