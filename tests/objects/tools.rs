//! The outside tools a test runs. Each is found, or the test is skipped
//! with a message saying why; under CI a missing tool fails the test.

use std::path::PathBuf;
use std::process::Command;

/// A program that answers `probe` (its version, say) successfully.
pub fn command(program: impl Into<PathBuf>, probe: &[&str], why: &str) -> Option<PathBuf> {
    let program = program.into();
    let works = Command::new(&program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    found(works.then_some(program.clone()), &program, why)
}

/// A file that is there.
pub fn file(path: PathBuf, why: &str) -> Option<PathBuf> {
    let there = path.is_file().then(|| path.clone());
    found(there, &path, why)
}

fn found(tool: Option<PathBuf>, looked_for: &std::path::Path, why: &str) -> Option<PathBuf> {
    if tool.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {}: {why}",
            looked_for.display()
        );
        eprintln!("skipping: {} not found: {why}", looked_for.display());
    }
    tool
}
