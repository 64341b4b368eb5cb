//! The layout the README draws is the one the code has: every file of
//! `src/` is listed with what it holds, none is over the size a newcomer can
//! read at once, and the module graph has no cycle (each module uses only
//! modules listed below it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The graph in the README, in its order.
fn drawn() -> Vec<(String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let (_, after) = readme
        .split_once("<!-- module graph: checked by tests/unit/layout.rs -->\n```\n")
        .expect("the README's module graph");
    let (block, _) = after.split_once("```").expect("the end of the graph");
    block
        .lines()
        .map(|line| {
            let (module, uses) = line.split_once("->").expect("`module -> uses`");
            let uses = uses
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            (module.trim().to_owned(), uses)
        })
        .collect()
}

/// The top-level module a file of `src/` belongs to.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("src")).expect("under src");
    let first = relative.components().next().expect("a file");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Who uses whom, from `crate::x` in the library and `registry_rewriter::x`
/// in the binary.
fn in_the_code() -> Graph {
    let mut paths = Vec::new();
    files(&root().join("src"), &mut paths);
    let mut graph = Graph::new();
    for path in paths {
        let module = module_of(&path);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        let uses = graph.entry(module.clone()).or_default();
        for prefix in ["crate::", "registry_rewriter::"] {
            for (at, _) in text.match_indices(prefix) {
                let name: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn the_readme_draws_the_module_graph_the_code_has() {
    let drawn: Graph = drawn().into_iter().collect();
    assert_eq!(drawn, in_the_code());
}

#[test]
fn each_module_uses_only_modules_below_it() {
    let order = drawn();
    for (i, (module, uses)) in order.iter().enumerate() {
        for used in uses {
            let below = order[i + 1..].iter().any(|(m, _)| m == used);
            assert!(below, "{module} uses {used}, which is not below it");
        }
    }
}

/// A file of `src/`, as the README's tree names it.
fn relative(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("src")).expect("under src");
    relative.to_string_lossy().replace('\\', "/")
}

#[test]
fn the_readme_lists_every_file_of_src() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let (_, after) = readme
        .split_once("<!-- source tree: checked by tests/unit/layout.rs -->\n```\n")
        .expect("the README's source tree");
    let (block, _) = after.split_once("```").expect("the end of the tree");
    let listed: BTreeSet<String> = block
        .lines()
        .map(|line| line.split_whitespace().next().expect("a path").to_owned())
        .collect();
    let mut paths = Vec::new();
    files(&root().join("src"), &mut paths);
    let there: BTreeSet<String> = paths.iter().map(|p| relative(p)).collect();
    assert_eq!(listed, there);
}

#[test]
fn no_file_is_a_wall() {
    let mut paths = Vec::new();
    files(&root().join("src"), &mut paths);
    for path in paths {
        let lines = std::fs::read_to_string(&path)
            .expect("source")
            .lines()
            .count();
        let limit = if relative(&path) == "main.rs" {
            59
        } else {
            450
        };
        assert!(
            lines <= limit,
            "{} has {lines} lines, over {limit}",
            relative(&path)
        );
    }
}
