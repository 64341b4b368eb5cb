//! `registry-rewriter mutate`: what admission would do to manifests, offline.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::{self, Format};
use super::{io_error, CliError, ConfigFileArg};
use crate::preview::{self, Kinds};

#[derive(Args, Debug)]
pub(super) struct MutateArgs {
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
    /// Exit 1 when anything would change, or a value would be left naming
    /// a rewrite source, and 0 otherwise, as `kubectl diff` does; above 1
    /// on an error.
    #[arg(long)]
    pub(super) exit_code: bool,
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
pub(super) const EXIT_ERROR: u8 = 2;

pub(super) fn run(args: MutateArgs) -> Result<ExitCode, CliError> {
    let config = args.config.load()?;
    // A table is an audit: it follows every kind's pod template.
    let kinds = match args.output {
        MutateOutput::Table => Kinds::Every,
        _ => Kinds::Enabled,
    };
    let previewed = preview::read_sources(&args.files, args.recursive, config.rules(), kinds)?;

    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{}", preview::lines(&previewed, kinds));
    let _ = writeln!(stderr, "{}", preview::summary(&previewed));
    let admitted = || {
        previewed
            .iter()
            .map(|d| d.admitted.clone())
            .collect::<Vec<_>>()
    };
    let text = match args.output {
        MutateOutput::Yaml => output::documents(&admitted(), Format::Yaml)?,
        MutateOutput::Json => output::documents(&admitted(), Format::Json)?,
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
        .write_all(text.as_bytes())
        .map_err(io_error("writing the output"))?;
    let changes = previewed.iter().any(|d| {
        d.changed_objects > 0
            || d.rows
                .iter()
                .any(|r| matches!(r.finding, preview::Finding::Leftover(_)))
    });
    Ok(match (args.exit_code, changes) {
        (true, true) => ExitCode::from(EXIT_CHANGES),
        _ => ExitCode::SUCCESS,
    })
}
