//! `registry-rewriter guard`: the rules as ValidatingAdmissionPolicies that
//! say what every back end left.

use std::process::ExitCode;

use clap::Args;

use super::output::{self, Format};
use super::{CliError, ConfigFileArg};
use crate::policy::guard::{self, Enforcement};

#[derive(Args, Debug)]
pub(super) struct GuardArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Refuse an object whose image is still on a rewrite source, instead
    /// of warning (builds are always warned about).
    #[arg(long)]
    deny: bool,
    /// Output format: YAML documents, or a JSON List.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

pub(super) fn run(args: GuardArgs) -> Result<ExitCode, CliError> {
    let config = args.config.load()?;
    let enforcement = match args.deny {
        true => Enforcement::DenyImages,
        false => Enforcement::Warn,
    };
    let objects = guard::render(config.rules(), enforcement)?;
    print!("{}", output::documents(&objects, args.output)?);
    Ok(ExitCode::SUCCESS)
}
