//! Turns decided changes into JSON Patch operations built from typed
//! pointers (escaping `~` and `/` is jsonptr's job, never `format!`'s), and
//! keeps the explanation line for each.

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use jsonptr::{PointerBuf, Token};
use serde_json::{Map, Value};

use super::explain::{shown, Change, ChangeKind};
use super::leftovers::Leftover;
use super::rules::ORIGINAL_IMAGES_ANNOTATION;
use super::view::{MetadataView, SecretRefView};
use super::{ContainerAt, Mutation};

pub(crate) struct PatchBuilder {
    pod_spec_path: &'static [&'static str],
    operations: Vec<PatchOperation>,
    changes: Vec<Change>,
    warnings: Vec<String>,
    original_images: Vec<(String, String)>,
    /// Container values replaced or removed, for the leftover lines.
    edited: Vec<Edited>,
    leftovers: Vec<Leftover>,
}

/// A value of a container's `command`, `args` or `env` that the patch
/// replaces (with `new`) or removes (`None`), by original index.
#[derive(Debug)]
pub(crate) struct Edited {
    pub list: &'static str,
    pub container: usize,
    pub field: &'static str,
    pub index: usize,
    pub new: Option<String>,
}

/// Edits to one string list (`command` or `args`), by original index.
#[derive(Debug, Default)]
pub(crate) struct ListEdits {
    pub replaced: Vec<(usize, String)>,
    pub removed: Vec<usize>,
    pub appended: Vec<String>,
    /// Original index the appended values go in front of (a `--` that ends
    /// the flags); `None` appends at the end.
    pub insert_before: Option<usize>,
}

impl ListEdits {
    pub fn is_empty(&self) -> bool {
        self.replaced.is_empty() && self.removed.is_empty() && self.appended.is_empty()
    }
}

impl PatchBuilder {
    pub fn new(pod_spec_path: &'static [&'static str]) -> Self {
        PatchBuilder {
            pod_spec_path,
            operations: Vec::new(),
            changes: Vec::new(),
            warnings: Vec::new(),
            original_images: Vec::new(),
            edited: Vec::new(),
            leftovers: Vec::new(),
        }
    }

    /// A pod template, not a Pod: the pod spec is not at `/spec`.
    fn is_template(&self) -> bool {
        self.pod_spec_path != ["spec"]
    }

    fn pod_spec_pointer(&self, rest: &[&str]) -> PointerBuf {
        pointer(self.pod_spec_path.iter().chain(rest).copied())
    }

    fn container_pointer(&self, at: &ContainerAt<'_>, rest: &[&str]) -> PointerBuf {
        let mut index = itoa::Buffer::new();
        let index = index.format(at.index);
        pointer(
            self.pod_spec_path
                .iter()
                .copied()
                .chain([at.list, index])
                .chain(rest.iter().copied()),
        )
    }

    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    pub fn leave(&mut self, leftover: Leftover) {
        self.leftovers.push(leftover);
    }

    pub fn explain(&mut self, kind: ChangeKind, message: String) {
        self.changes.push(Change { kind, message });
    }

    pub fn replace_image(&mut self, at: &ContainerAt<'_>, old: &str, new: String) {
        let label = at.label();
        self.explain(
            ChangeKind::Image,
            format!("{label}.image: {} -> {}", shown(old), shown(&new)),
        );
        self.operations
            .push(PatchOperation::Replace(ReplaceOperation {
                path: self.container_pointer(at, &["image"]),
                value: Value::String(new),
            }));
        self.original_images.push((label, old.to_owned()));
    }

    /// What the patch does to the values of `at`'s `field`.
    pub fn edited<'s>(
        &'s self,
        at: &'s ContainerAt<'_>,
        field: &'s str,
    ) -> impl Iterator<Item = &'s Edited> + 's {
        self.edited
            .iter()
            .filter(move |e| e.list == at.list && e.container == at.index && e.field == field)
    }

    /// Replaces the value of a container's `env[index]`.
    pub fn replace_env_value(&mut self, at: &ContainerAt<'_>, index: usize, value: String) {
        self.edited.push(Edited {
            list: at.list,
            container: at.index,
            field: "env",
            index,
            new: Some(value.clone()),
        });
        self.replace_in_container(at, &["env", &index.to_string(), "value"], value);
    }

    /// Replaces one string of a container, such as `image`.
    fn replace_in_container(&mut self, at: &ContainerAt<'_>, rest: &[&str], value: String) {
        self.operations
            .push(PatchOperation::Replace(ReplaceOperation {
                path: self.container_pointer(at, rest),
                value: Value::String(value),
            }));
    }

    /// Emits the operations for one list. Replacements use original
    /// indices, so they go first; removals go from the highest index down
    /// so that each leaves the lower indices valid; appends go last.
    pub fn edit_list(
        &mut self,
        at: &ContainerAt<'_>,
        field: &'static str,
        list_exists: bool,
        edits: ListEdits,
    ) {
        let edited = |index: usize, new: Option<&String>| Edited {
            list: at.list,
            container: at.index,
            field,
            index,
            new: new.cloned(),
        };
        self.edited
            .extend(edits.replaced.iter().map(|(i, new)| edited(*i, Some(new))));
        self.edited
            .extend(edits.removed.iter().map(|i| edited(*i, None)));
        for (index, value) in edits.replaced {
            self.operations
                .push(PatchOperation::Replace(ReplaceOperation {
                    path: self.container_pointer(at, &[field, &index.to_string()]),
                    value: Value::String(value),
                }));
        }
        let mut removed = edits.removed;
        removed.sort_unstable_by(|a, b| b.cmp(a));
        removed.dedup();
        // Where the insertion point lands once the removals are done.
        let insert_at = edits
            .insert_before
            .map(|index| index - removed.iter().filter(|r| **r < index).count());
        for index in removed {
            self.operations
                .push(PatchOperation::Remove(RemoveOperation {
                    path: self.container_pointer(at, &[field, &index.to_string()]),
                }));
        }
        if edits.appended.is_empty() {
            return;
        }
        if list_exists {
            for (offset, value) in edits.appended.into_iter().enumerate() {
                let position =
                    insert_at.map_or_else(|| "-".to_owned(), |at| (at + offset).to_string());
                self.operations.push(PatchOperation::Add(AddOperation {
                    path: self.container_pointer(at, &[field, &position]),
                    value: Value::String(value),
                }));
            }
        } else {
            self.operations.push(PatchOperation::Add(AddOperation {
                path: self.container_pointer(at, &[field]),
                value: Value::Array(edits.appended.into_iter().map(Value::String).collect()),
            }));
        }
    }

    /// Appends `value` to a list of the pod spec, creating the list when
    /// it is absent.
    pub fn append_to_pod_spec(&mut self, field: &str, list_exists: bool, value: Value) {
        let operation = match list_exists {
            true => AddOperation {
                path: self.pod_spec_pointer(&[field, "-"]),
                value,
            },
            false => AddOperation {
                path: self.pod_spec_pointer(&[field]),
                value: Value::Array(vec![value]),
            },
        };
        self.operations.push(PatchOperation::Add(operation));
    }

    /// Appends `value` to a list of a container, creating the list when it
    /// is absent.
    pub fn append_to_container(
        &mut self,
        at: &ContainerAt<'_>,
        field: &str,
        list_exists: bool,
        value: Value,
    ) {
        let operation = match list_exists {
            true => AddOperation {
                path: self.container_pointer(at, &[field, "-"]),
                value,
            },
            false => AddOperation {
                path: self.container_pointer(at, &[field]),
                value: Value::Array(vec![value]),
            },
        };
        self.operations.push(PatchOperation::Add(operation));
    }

    /// Appends each configured secret that is not there yet; existing
    /// entries keep their order. A pod template without the list is left
    /// without it: the ServiceAccount admission plugin copies the
    /// ServiceAccount's `imagePullSecrets` into a Pod only when the Pod has
    /// none, so a list created here would keep them from every Pod the
    /// template makes. Those Pods get ours at their own admission.
    pub fn ensure_pull_secrets(
        &mut self,
        existing: Option<&[SecretRefView<'_>]>,
        wanted: &[String],
        pods_enabled: bool,
    ) {
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| {
                !existing
                    .unwrap_or_default()
                    .iter()
                    .any(|s| s.name.as_deref() == Some(name.as_str()))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        if existing.is_none() && self.is_template() {
            let names: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
            let then = if pods_enabled {
                "its Pods get it at their own admission, after their ServiceAccount's"
            } else {
                "enable the Pod kind so that its Pods get it at their own admission"
            };
            self.warn(format!(
                "imagePullSecrets: {} not added to the pod template, which has none \
                 (a list here would keep the ServiceAccount's from its Pods); {then}",
                names.join(", ")
            ));
            return;
        }
        for name in &missing {
            self.explain(
                ChangeKind::ImagePullSecret,
                format!("imagePullSecrets: added {name}"),
            );
        }
        let entry = |name: &String| {
            let mut map = Map::new();
            map.insert("name".into(), Value::String(name.to_string()));
            Value::Object(map)
        };
        match existing {
            Some(_) => {
                for name in missing {
                    self.operations.push(PatchOperation::Add(AddOperation {
                        path: self.pod_spec_pointer(&["imagePullSecrets", "-"]),
                        value: entry(name),
                    }));
                }
            }
            None => self.operations.push(PatchOperation::Add(AddOperation {
                path: self.pod_spec_pointer(&["imagePullSecrets"]),
                value: Value::Array(missing.into_iter().map(entry).collect()),
            })),
        }
    }

    /// Records the images replaced in this round in the audit annotation,
    /// merged with what earlier rounds recorded (reinvocation).
    pub fn record_original_images(&mut self, metadata: Option<&MetadataView<'_>>) {
        if self.original_images.is_empty() {
            return;
        }
        let this_round = std::mem::take(&mut self.original_images);
        let previous = metadata
            .and_then(|m| m.annotation(ORIGINAL_IMAGES_ANNOTATION))
            .and_then(|text| match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(previous) => Some(previous),
                Err(_) => {
                    self.warn(format!(
                        "metadata.annotations[{ORIGINAL_IMAGES_ANNOTATION}]: was not a JSON object; replaced"
                    ));
                    None
                }
            });
        let recorded = match previous {
            // The usual case, a first round: no map to build.
            None => serde_json::to_string(&OriginalImages(&this_round)),
            Some(mut recorded) => {
                for (label, original) in this_round {
                    recorded.entry(label).or_insert(Value::String(original));
                }
                serde_json::to_string(&recorded)
            }
        };
        let value = Value::String(recorded.expect("strings always serialise"));
        let annotation_path = ["metadata", "annotations", ORIGINAL_IMAGES_ANNOTATION];
        let mut annotations = Map::new();
        let operation = match metadata {
            Some(MetadataView {
                annotations: Some(_),
                ..
            }) => PatchOperation::Add(AddOperation {
                path: pointer(annotation_path),
                value,
            }),
            Some(_) => {
                annotations.insert(ORIGINAL_IMAGES_ANNOTATION.into(), value);
                PatchOperation::Add(AddOperation {
                    path: pointer(["metadata", "annotations"]),
                    value: Value::Object(annotations),
                })
            }
            None => {
                annotations.insert(ORIGINAL_IMAGES_ANNOTATION.into(), value);
                let mut metadata = Map::new();
                metadata.insert("annotations".into(), Value::Object(annotations));
                PatchOperation::Add(AddOperation {
                    path: pointer(["metadata"]),
                    value: Value::Object(metadata),
                })
            }
        };
        self.operations.push(operation);
    }

    pub fn finish(self) -> Mutation {
        Mutation {
            patch: Patch(self.operations),
            changes: self.changes,
            warnings: self.warnings,
            leftovers: self.leftovers,
            skipped: false,
            generate_name: None,
        }
    }
}

/// A pointer from tokens, each escaped by jsonptr, in one allocation
/// (building it token by token grew the string several times).
fn pointer<'t>(tokens: impl IntoIterator<Item = &'t str, IntoIter: Clone>) -> PointerBuf {
    let tokens = tokens.into_iter();
    let length: usize = tokens.clone().map(|token| token.len() + 1).sum();
    let mut text = String::with_capacity(length + 8);
    for token in tokens.clone() {
        text.push('/');
        text.push_str(Token::new(token).encoded());
    }
    // Escaped tokens always make a valid pointer; the fallback is never taken.
    PointerBuf::parse(text).unwrap_or_else(|_| PointerBuf::from_tokens(tokens))
}

/// Container label -> original image, as a JSON object; the first entry
/// for a label wins, as in the merge with an earlier round.
struct OriginalImages<'a>(&'a [(String, String)]);

impl serde::Serialize for OriginalImages<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seen = std::collections::HashSet::new();
        serializer.collect_map(
            self.0
                .iter()
                .filter(|(label, _)| seen.insert(label.as_str()))
                .map(|(label, original)| (label, original)),
        )
    }
}
