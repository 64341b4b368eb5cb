//! Offline preview (`registry-rewriter mutate`): runs the engine over
//! manifests (YAML or JSON, several documents, `kind: List`) as admission
//! would, for CI and for humans. Three parts: `input` (files, directories,
//! stdin), `simulate` (admission with the patch applied) and `report`
//! (lines, table, summary).

mod input;
mod report;
mod simulate;

use serde_json::Value;

use crate::engine::{self, Change, Leftover};
pub use input::{read_sources, InputError};
pub use report::{lines, summary, table};
pub use simulate::{preview, read_documents, stream_json};

/// A document that could not be previewed.
#[derive(Debug, thiserror::Error)]
#[error("document {index}{}", describe(.name))]
pub struct PreviewError {
    /// 1-based position in the input.
    pub index: usize,
    pub name: Option<String>,
    #[source]
    pub problem: DocumentProblem,
}

/// Why a document could not be previewed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentProblem {
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("not a Kubernetes object (expected a mapping)")]
    NotAnObject,
    #[error("items[{index}] ({name})")]
    Item {
        index: usize,
        name: String,
        #[source]
        problem: Box<DocumentProblem>,
    },
    #[error(transparent)]
    Object(#[from] engine::ObjectError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("internal error, the patch does not apply")]
    Patch(#[source] json_patch::PatchError),
}

fn describe(name: &Option<String>) -> String {
    name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
}

/// One input document after admission.
#[derive(Debug)]
pub struct Previewed {
    /// `Kind/name`, for messages.
    pub name: String,
    pub admitted: Value,
    pub patch: json_patch::Patch,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// Objects in the document: 1, or the items of a `List`.
    pub objects: usize,
    /// Of those, how many would change.
    pub changed_objects: usize,
    /// Each change, with the object it is in.
    pub rows: Vec<Row>,
}

/// One change to one object, or one value left naming a rewrite source,
/// for a table.
#[derive(Debug, Clone)]
pub struct Row {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub finding: Finding,
}

/// What a row reports.
#[derive(Debug, Clone)]
pub enum Finding {
    Change(Change),
    Leftover(Leftover),
}

impl Finding {
    /// Field, old value and new value; a leftover's new value is its own.
    pub fn parts(&self) -> (String, Option<&str>, Option<&str>) {
        match self {
            Finding::Change(change) => change.parts(),
            Finding::Leftover(left) => (
                left.field.clone(),
                Some(&left.value),
                Some("<left as it is>"),
            ),
        }
    }
}

/// Which kinds are previewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// The kinds the configuration enables, as admission would.
    Enabled,
    /// Every kind with a pod template, for an audit of what still names the
    /// internal registry (a Deployment's Pods are rewritten at admission,
    /// but the Deployment itself still says the old name).
    Every,
}
