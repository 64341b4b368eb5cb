//! The `registry-rewriter` command; everything it does is in the library's
//! `cli` module.

fn main() -> std::process::ExitCode {
    registry_rewriter::cli::run()
}
