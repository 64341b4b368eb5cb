//! Admission, simulated: each document (and each item of a `List`) run
//! through the engine with its patch applied, as the API server would.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{DocumentProblem, Finding, Kinds, PreviewError, Previewed, Row};
use crate::engine::{self, Leftover, Mutation, Rules, Scope, Workload};

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
pub fn preview(
    documents: Vec<Value>,
    rules: &Rules,
    kinds: Kinds,
) -> Result<Vec<Previewed>, PreviewError> {
    documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| {
            preview_document(document, rules, kinds).map_err(|(name, problem)| PreviewError {
                index: i + 1,
                name,
                problem,
            })
        })
        .collect()
}

type DocumentError = (Option<String>, DocumentProblem);

fn preview_document(
    mut document: Value,
    rules: &Rules,
    kinds: Kinds,
) -> Result<Previewed, DocumentError> {
    let name = object_name(&document);
    if !document.is_object() {
        return Err((None, DocumentProblem::NotAnObject));
    }
    let mut patch = json_patch::Patch(Vec::new());
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    let mut rows = Vec::new();
    let (mut objects, mut changed_objects) = (1, 0);
    if document.get("kind").and_then(Value::as_str) == Some("List") {
        objects = 0;
        if let Some(Value::Array(items)) = document.get_mut("items") {
            for (i, item) in items.iter_mut().enumerate() {
                let item_name = object_name(item);
                let identity = identity(item);
                let mutation = admit(item, rules, kinds).map_err(|problem| {
                    let problem = DocumentProblem::Item {
                        index: i,
                        name: item_name.clone(),
                        problem: Box::new(problem),
                    };
                    (Some(name.clone()), problem)
                })?;
                objects += 1;
                changed_objects += usize::from(!mutation.is_empty());
                rows.extend(identity.rows(&mutation));
                warnings.extend(
                    mutation
                        .leftovers
                        .iter()
                        .map(|l| format!("{item_name}: {}", l.message())),
                );
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
        let identity = identity(&document);
        let mutation = admit(&mut document, rules, kinds).map_err(|r| (Some(name.clone()), r))?;
        changed_objects = usize::from(!mutation.is_empty());
        rows = identity.rows(&mutation);
        patch = mutation.patch;
        changes = mutation.changes;
        warnings = mutation.warnings;
        warnings.extend(mutation.leftovers.iter().map(Leftover::message));
    }
    Ok(Previewed {
        name,
        admitted: document,
        patch,
        changes,
        warnings,
        objects,
        changed_objects,
        rows,
    })
}

/// Runs the engine on one object and applies its patch in place. Kinds
/// that are not enabled pass through unchanged.
fn admit(object: &mut Value, rules: &Rules, kinds: Kinds) -> Result<Mutation, DocumentProblem> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let workload = match Workload::from_api_version(api_version, kind) {
        Some(w) if kinds == Kinds::Every || rules.is_kind_enabled(w.kind) => w,
        _ => return Ok(Mutation::default()),
    };
    let raw = RawValue::from_string(object.to_string())?;
    let mutation = engine::mutate(&raw, workload, Scope::Create, rules)?;
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

/// Reads one JSON document from `reader` and previews it. A document with
/// a top-level `items` array (a `List`, as `kubectl get -o json` prints it)
/// is read item by item, each handed to `each` and dropped, so memory stays
/// bounded by the largest item rather than the whole input; any other
/// document is read whole. A list item's `Previewed` keeps its rows and
/// counts, not the admitted object (`Value::Null`) nor its patch.
pub fn stream_json(
    reader: impl std::io::Read,
    rules: &Rules,
    kinds: Kinds,
    mut each: impl FnMut(Previewed),
) -> Result<(), PreviewError> {
    let mut deserializer = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let mut index = 0;
    let mut failed = None;
    let seed = TopSeed {
        each: &mut |item: Value| {
            if failed.is_some() {
                return;
            }
            index += 1;
            match preview_document(item, rules, kinds) {
                Ok(mut previewed) => {
                    previewed.admitted = Value::Null;
                    previewed.patch = json_patch::Patch(Vec::new());
                    each(previewed);
                }
                Err((name, problem)) => {
                    failed = Some(PreviewError {
                        index,
                        name,
                        problem,
                    })
                }
            }
        },
    };
    let rest = serde::de::DeserializeSeed::deserialize(seed, &mut deserializer)
        .and_then(|rest| deserializer.end().map(|()| rest))
        .map_err(|e| PreviewError {
            index: index + 1,
            name: None,
            problem: e.into(),
        })?;
    if let Some(error) = failed {
        return Err(error);
    }
    if let Some(document) = rest {
        let previewed =
            preview_document(document, rules, kinds).map_err(|(name, problem)| PreviewError {
                index: 1,
                name,
                problem,
            })?;
        each(previewed);
    }
    Ok(())
}

/// The top level of a JSON document: `items` goes to `each` one by one;
/// the rest is kept, and returned when there were no items.
struct TopSeed<'f> {
    each: &'f mut dyn FnMut(Value),
}

impl<'de> serde::de::DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TopSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object or List")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = serde_json::Map::new();
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" && !listed {
                listed = true;
                map.next_value_seed(ItemsSeed { each: self.each })?;
            } else {
                rest.insert(key, map.next_value()?);
            }
        }
        Ok((!listed).then_some(Value::Object(rest)))
    }
}

struct ItemsSeed<'f> {
    each: &'f mut dyn FnMut(Value),
}

impl<'de> serde::de::DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            (self.each)(item);
        }
        Ok(())
    }
}

/// Namespace, kind and name of an object, for its rows.
struct Identity {
    namespace: String,
    kind: String,
    name: String,
}

impl Identity {
    /// A row per change, then one per leftover.
    fn rows(&self, mutation: &Mutation) -> Vec<Row> {
        let changes = mutation.changes.iter().cloned().map(Finding::Change);
        let leftovers = mutation.leftovers.iter().cloned().map(Finding::Leftover);
        changes
            .chain(leftovers)
            .map(|finding| Row {
                namespace: self.namespace.clone(),
                kind: self.kind.clone(),
                name: self.name.clone(),
                finding,
            })
            .collect()
    }
}

fn identity(object: &Value) -> Identity {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("<none>").to_owned();
    let metadata = object.get("metadata");
    Identity {
        namespace: text(metadata.and_then(|m| m.get("namespace"))),
        kind: text(object.get("kind")),
        name: text(metadata.and_then(|m| m.get("name").or_else(|| m.get("generateName")))),
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
