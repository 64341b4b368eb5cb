//! Offline preview: runs the engine over manifests (YAML or JSON, several
//! documents, `kind: List`) as admission would, for CI and for humans.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::Config;
use crate::engine::{self, Change, Mutation, Scope, Workload};

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
}

/// Splits YAML or JSON text into documents; empty documents are dropped.
pub fn read_documents(text: &str) -> Result<Vec<Value>, PreviewError> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| PreviewError {
            index: i + 1,
            name: None,
            problem: e.into(),
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Admits every document (and every item of a `List`).
pub fn preview(documents: Vec<Value>, config: &Config) -> Result<Vec<Previewed>, PreviewError> {
    documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| {
            preview_document(document, config).map_err(|(name, problem)| PreviewError {
                index: i + 1,
                name,
                problem,
            })
        })
        .collect()
}

type DocumentError = (Option<String>, DocumentProblem);

fn preview_document(mut document: Value, config: &Config) -> Result<Previewed, DocumentError> {
    let name = object_name(&document);
    if !document.is_object() {
        return Err((None, DocumentProblem::NotAnObject));
    }
    let mut patch = json_patch::Patch(Vec::new());
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    if document.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(Value::Array(items)) = document.get_mut("items") {
            for (i, item) in items.iter_mut().enumerate() {
                let item_name = object_name(item);
                let mutation = admit(item, config).map_err(|problem| {
                    let problem = DocumentProblem::Item {
                        index: i,
                        name: item_name.clone(),
                        problem: Box::new(problem),
                    };
                    (Some(name.clone()), problem)
                })?;
                changes.extend(mutation.changes.into_iter().map(|mut c| {
                    c.message = format!("{item_name}: {}", c.message);
                    c
                }));
                warnings.extend(
                    mutation
                        .warnings
                        .into_iter()
                        .map(|w| format!("{item_name}: {w}")),
                );
                patch.0.extend(
                    mutation
                        .patch
                        .0
                        .into_iter()
                        .map(|op| prefix_operation(op, i)),
                );
            }
        }
    } else {
        let mutation = admit(&mut document, config).map_err(|r| (Some(name.clone()), r))?;
        patch = mutation.patch;
        changes = mutation.changes;
        warnings = mutation.warnings;
    }
    Ok(Previewed {
        name,
        admitted: document,
        patch,
        changes,
        warnings,
    })
}

/// Runs the engine on one object and applies its patch in place. Kinds
/// that are not enabled pass through unchanged.
fn admit(object: &mut Value, config: &Config) -> Result<Mutation, DocumentProblem> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let workload = match Workload::from_api_version(api_version, kind) {
        Some(w) if config.is_kind_enabled(w.kind) => w,
        _ => return Ok(Mutation::default()),
    };
    let raw = RawValue::from_string(object.to_string())?;
    let mutation = engine::mutate(&raw, workload, Scope::Create, config)?;
    json_patch::patch(object, &mutation.patch).map_err(DocumentProblem::Patch)?;
    Ok(mutation)
}

/// Points an item's operation into the List: `/items/<i>/...`.
fn prefix_operation(
    operation: json_patch::PatchOperation,
    item: usize,
) -> json_patch::PatchOperation {
    use json_patch::PatchOperation as Op;
    let prefix = jsonptr::PointerBuf::from_tokens(["items".to_owned(), item.to_string()]);
    let rebase = |path: &jsonptr::PointerBuf| prefix.concat(path);
    match operation {
        Op::Add(mut op) => {
            op.path = rebase(&op.path);
            Op::Add(op)
        }
        Op::Remove(mut op) => {
            op.path = rebase(&op.path);
            Op::Remove(op)
        }
        Op::Replace(mut op) => {
            op.path = rebase(&op.path);
            Op::Replace(op)
        }
        other => other,
    }
}

fn object_name(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let metadata = object.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    format!("{kind}/{name}")
}
