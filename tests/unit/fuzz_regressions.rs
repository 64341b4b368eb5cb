//! Replays the fuzz corpus and every input that ever failed a fuzz target
//! through the same checks, so that findings stay fixed without a fuzzer.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).expect("input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{} fails the {target} checks",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count > 0, "the {target} corpus is there");
}

#[test]
fn reference_corpus_and_regressions() {
    replay("reference", checks::check_reference);
}

#[test]
fn engine_corpus_and_regressions() {
    replay("engine", checks::check_engine);
}

#[test]
fn review_corpus_and_regressions() {
    replay("review", checks::check_review);
}
