//! `registry-rewriter policy`: the rules as MutatingAdmissionPolicies.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::{self, Format};
use super::{CliError, ConfigFileArg};
use crate::policy;

#[derive(Args, Debug)]
pub(super) struct PolicyArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// admissionregistration.k8s.io version: v1 (Kubernetes 1.36 and later) or
    /// v1beta1 (1.34 and 1.35, with the MutatingAdmissionPolicy feature gate).
    #[arg(long, value_enum, default_value_t = PolicyApiVersion::V1)]
    api_version: PolicyApiVersion,
    /// Output format: YAML documents, or a JSON List.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Print only the webhook configuration's pre-filter for these rules
    /// (its `matchConditions` entry): a configuration that names other
    /// registries puts it in the webhook configuration too.
    #[arg(long)]
    webhook_match_condition: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PolicyApiVersion {
    V1,
    V1beta1,
}

pub(super) fn run(args: PolicyArgs) -> Result<ExitCode, CliError> {
    let config = args.config.load()?;
    let version = match args.api_version {
        PolicyApiVersion::V1 => policy::ApiVersion::V1,
        PolicyApiVersion::V1beta1 => policy::ApiVersion::V1beta1,
    };
    if args.webhook_match_condition {
        let condition = serde_json::json!({
            "name": policy::prefilter::NAME,
            "expression": policy::prefilter::webhook_condition(config.rules()),
        });
        print!("{}", output::documents(&[condition], args.output)?);
        return Ok(ExitCode::SUCCESS);
    }
    let objects = policy::render(config.rules(), version)?;
    print!("{}", output::documents(&objects, args.output)?);
    Ok(ExitCode::SUCCESS)
}
