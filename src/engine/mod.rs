//! The rewrite engine: a pure function from an object's raw JSON and the
//! configuration to RFC 6902 operations plus one explanation per change.
//! It does no I/O, never panics, and never re-serialises the object.

mod builders;
mod credentials;
mod explain;
mod leftovers;
mod patch;
pub mod rules;
pub mod view;
pub mod workload;

use std::collections::HashSet;

use serde_json::value::RawValue;

use crate::reference::{ImageRef, ReferenceError};
use explain::shown;
pub use explain::{Change, ChangeKind};
pub use leftovers::{Leftover, LeftoverReason};
use patch::PatchBuilder;
pub use rules::{Rules, ORIGINAL_IMAGES_ANNOTATION, SKIP_ANNOTATION};
use view::{read_object, ContainerView, JsonStr};
pub use view::{FieldError, ObjectParts, ObjectView};
pub use workload::{Workload, WORKLOADS};

/// The engine's answer for one object.
#[derive(Debug, Default)]
pub struct Mutation {
    pub patch: json_patch::Patch,
    pub changes: Vec<Change>,
    /// Things noticed but left alone, such as a reference that does not parse.
    pub warnings: Vec<String>,
    /// Values left naming a rewrite source, each also a warning line.
    pub leftovers: Vec<Leftover>,
    /// The object opted out with the skip annotation.
    pub skipped: bool,
    /// The object's `metadata.generateName`, for logs when it has no name yet.
    pub generate_name: Option<String>,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// Which part of the object may change.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A new object: every container, pull secrets and the audit annotation.
    Create,
    /// `kubectl debug` (UPDATE of `pods/ephemeralcontainers`): only the
    /// ephemeral containers that `old_object` does not have yet. The API
    /// server keeps every other field of the old pod on this subresource,
    /// and existing ephemeral containers may not change.
    NewEphemeralContainers { old_object: Option<&'a RawValue> },
}

/// The object does not have the shape the engine reads; the error names
/// the field.
pub type ObjectError = FieldError;

/// Reads the object's metadata and pod spec, naming the field on failure.
fn read<'a>(object: &'a RawValue, workload: &Workload) -> Result<ObjectParts<'a>, ObjectError> {
    read_object(object.get(), workload.pod_spec_path).map_err(|e| e.within("object"))
}

/// Computes the patch for one object of kind `workload`.
pub fn mutate(
    object: &RawValue,
    workload: &Workload,
    scope: Scope<'_>,
    rules: &Rules,
) -> Result<Mutation, ObjectError> {
    mutate_parts(&read(object, workload)?, workload, scope, rules)
}

/// The same, for an object already read (the admission layer reads it while
/// parsing the review, in the same pass).
pub fn mutate_parts(
    parts: &ObjectParts<'_>,
    workload: &Workload,
    scope: Scope<'_>,
    rules: &Rules,
) -> Result<Mutation, ObjectError> {
    let metadata = parts.metadata.as_ref();
    let generate_name = metadata
        .and_then(|m| m.generate_name.as_deref())
        .map(str::to_owned);
    if metadata
        .and_then(|m| m.annotation(SKIP_ANNOTATION))
        .is_some_and(|v| v == "true")
    {
        return Ok(Mutation {
            skipped: true,
            generate_name,
            ..Mutation::default()
        });
    }

    let Some(spec) = parts.pod_spec.as_ref() else {
        return Ok(Mutation {
            generate_name,
            ..Mutation::default()
        });
    };

    let mut patch = PatchBuilder::new(workload.pod_spec_path);
    let mut on_target_registry = false;
    let mut builds = Vec::new();
    let lists: [(&str, &Option<Vec<ContainerView>>); 3] = [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
        ("ephemeralContainers", &spec.ephemeral_containers),
    ];
    let existing_ephemeral = match scope {
        Scope::Create => None,
        Scope::NewEphemeralContainers { old_object } => {
            Some(existing_ephemeral_names(old_object, workload)?)
        }
    };
    for (list, containers) in lists {
        let Some(containers) = containers else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            if let Some(existing) = &existing_ephemeral {
                let is_new = list == "ephemeralContainers"
                    && container
                        .name
                        .as_deref()
                        .is_none_or(|n| !existing.contains(n));
                if !is_new {
                    continue;
                }
            }
            let at = ContainerAt {
                list,
                index,
                name: container.name.as_deref(),
            };
            // Parsed once, for the rules and for finding a builder.
            let image = container
                .image
                .as_deref()
                .map(|text| (text, ImageRef::parse(text)));
            on_target_registry |= rewrite_image(&at, image.as_ref(), rules, &mut patch);
            let image = image.as_ref().and_then(|(_, parsed)| parsed.as_ref().ok());
            let build = builders::rewrite(&at, container, image, rules, &mut patch);
            if mentions_in_values(container, rules) {
                let env = builders::env_vars(container.env);
                let builder = build.as_ref().map(|b| b.profile);
                leftovers::note(&at, container, &env, builder, rules, &mut patch);
            }
            if let Some(build) = build {
                builds.push(credentials::Site {
                    at,
                    container,
                    build,
                });
            }
        }
    }
    if matches!(scope, Scope::Create) {
        // An update of ephemeral containers may change nothing else.
        credentials::provide(&builds, spec, rules, &mut patch);
        if on_target_registry {
            patch.ensure_pull_secrets(
                spec.image_pull_secrets.as_deref(),
                rules.image_pull_secrets(),
                rules.is_kind_enabled("Pod"),
            );
        }
        patch.record_original_images(metadata);
    }
    Ok(Mutation {
        generate_name,
        ..patch.finish()
    })
}

/// The container's `command`, `args` or `env` may name a rule registry: a
/// cheap test on the raw text, before any leftover is looked for (an
/// escaped `env` is read to be sure).
fn mentions_in_values(container: &ContainerView<'_>, rules: &Rules) -> bool {
    let lists = [&container.command, &container.args];
    lists
        .into_iter()
        .flatten()
        .flatten()
        .any(|text| rules.mentions_a_registry(&text.0))
        || container
            .env
            .is_some_and(|env| env.get().contains("\\u") || rules.mentions_a_registry(env.get()))
}

/// Where a container is, for patch paths and explanation lines.
pub(crate) struct ContainerAt<'a> {
    pub list: &'static str,
    pub index: usize,
    pub name: Option<&'a str>,
}

impl ContainerAt<'_> {
    /// `containers[api]`, or `containers[#0]` for a container with no name.
    pub fn label(&self) -> String {
        match self.name {
            Some(name) => format!("{}[{}]", self.list, shown(name)),
            None => format!("{}[#{}]", self.list, self.index),
        }
    }
}

fn existing_ephemeral_names(
    old_object: Option<&RawValue>,
    workload: &Workload,
) -> Result<HashSet<String>, ObjectError> {
    let Some(old_object) = old_object else {
        return Ok(HashSet::new());
    };
    let parts = read_object(old_object.get(), workload.pod_spec_path)
        .map_err(|e| e.within("object").within("oldObject"))?;
    Ok(parts
        .pod_spec
        .and_then(|spec| spec.ephemeral_containers)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.name.map(|JsonStr(name)| name.into_owned()))
        .collect())
}

/// Rewrites the container's image if a rule matches. Returns whether the
/// image ends up on a rewrite target registry.
fn rewrite_image(
    at: &ContainerAt<'_>,
    image: Option<&(&str, Result<ImageRef<'_>, ReferenceError>)>,
    rules: &Rules,
    patch: &mut PatchBuilder,
) -> bool {
    let Some((text, parsed)) = image else {
        return false;
    };
    let reference = match parsed {
        Ok(reference) => reference,
        Err(e) => {
            patch.warn(format!(
                "{}.image: left unchanged, {:?} is not a valid image reference: {e}",
                at.label(),
                shown(text)
            ));
            return false;
        }
    };
    let Some(domain) = reference.domain else {
        return false;
    };
    match rewrite_reference(reference, rules) {
        Some(new_image) => {
            patch.replace_image(at, text, new_image);
            true
        }
        None => rules.is_rewrite_target(&domain),
    }
}

/// The rewritten reference, if a rule matches. Tag and digest are kept
/// byte for byte.
pub(crate) fn rewrite_reference(reference: &ImageRef<'_>, rules: &Rules) -> Option<String> {
    let domain = reference.domain?;
    let (rule, rest) = rules.find_rule(&domain, reference.path)?;
    let mut new = rule.rewrite_name(rest);
    if let Some(tag) = reference.tag {
        new.push(':');
        new.push_str(tag);
    }
    if let Some(digest) = reference.digest {
        new.push('@');
        new.push_str(digest);
    }
    Some(new)
}
