//! `registry-rewriter config`: the effective configuration.

use std::process::ExitCode;

use clap::Args;

use super::output::Format;
use super::{CliError, ConfigFileArg};

#[derive(Args, Debug)]
pub(super) struct ConfigArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

pub(super) fn run(args: ConfigArgs) -> Result<ExitCode, CliError> {
    let config = args.config.load()?;
    let text = match args.output {
        Format::Yaml => serde_yaml_ng::to_string(config.file())?,
        Format::Json => serde_json::to_string_pretty(config.file())? + "\n",
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
