//! What one namespace needs, decided from what the controller sees: a
//! pure function, so that every case is a table row.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::SelectorExt;
use kube::ResourceExt;

use crate::scope::{EXCLUDED_NAMESPACES, IGNORE_NAMESPACE_LABEL};

/// The field manager of every copy.
pub const FIELD_MANAGER: &str = "registry-rewriter-sync-secrets";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "registry-rewriter";
/// `namespace/name` of the source, on every copy.
pub const SOURCE_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/source";
/// The source's resourceVersion the copy was made from.
pub const SOURCE_VERSION_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/source-resource-version";
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";

/// What the controller is told to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub source_namespace: String,
    pub source_name: String,
    /// The copies' name: the first pull secret of the shared configuration.
    pub target_name: String,
    pub selector: Option<kube::core::Selector>,
}

/// What a namespace needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Being deleted, or the source's own namespace: nothing to do.
    Leave,
    /// Outside the selection and no copy of ours: nothing to do.
    NotSelected,
    /// Outside the selection, with a copy of ours to remove.
    Remove { uid: Option<String> },
    /// The copy is what the source says.
    InSync,
    /// Write (create or update) the copy.
    Apply(Box<Secret>),
    /// A Secret of that name that we did not make: never touched.
    Conflict {
        uid: Option<String>,
        version: Option<String>,
    },
    /// No source (or one of the wrong type): copies are kept as they are.
    SourceMissing,
}

impl Options {
    pub fn selects(&self, namespace: &Namespace) -> bool {
        let name = namespace.name_any();
        let labels = namespace.labels();
        !EXCLUDED_NAMESPACES.contains(&name.as_str())
            && labels.get(IGNORE_NAMESPACE_LABEL).map(String::as_str) != Some("true")
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    pub fn source_ref(&self) -> String {
        format!("{}/{}", self.source_namespace, self.source_name)
    }
}

/// Ours: the label, and our field manager among the writers.
pub fn is_ours(secret: &Secret) -> bool {
    secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && secret
            .managed_fields()
            .iter()
            .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
}

/// The copy `source` asks for in `namespace`: only the fields we own.
pub fn desired(options: &Options, source: &Secret, namespace: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(options.target_name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.into(),
                MANAGED_BY.into(),
            )])),
            annotations: Some(BTreeMap::from([
                (SOURCE_ANNOTATION.into(), options.source_ref()),
                (
                    SOURCE_VERSION_ANNOTATION.into(),
                    source.resource_version().unwrap_or_default(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: source.type_.clone(),
        data: source.data.clone(),
        ..Secret::default()
    }
}

/// The copy holds what `desired` holds.
fn matches(copy: &Secret, desired: &Secret) -> bool {
    let annotation = |s: &Secret, key: &str| s.annotations().get(key).cloned();
    copy.type_ == desired.type_
        && copy.data == desired.data
        && [SOURCE_ANNOTATION, SOURCE_VERSION_ANNOTATION]
            .iter()
            .all(|key| annotation(copy, key) == annotation(desired, key))
}

pub fn plan(
    options: &Options,
    namespace: &Namespace,
    source: Option<&Secret>,
    copy: Option<&Secret>,
) -> Plan {
    let name = namespace.name_any();
    if namespace.metadata.deletion_timestamp.is_some()
        || (name == options.source_namespace && options.source_name == options.target_name)
    {
        return Plan::Leave;
    }
    let ours = copy.filter(|c| is_ours(c));
    if !options.selects(namespace) {
        return match ours {
            Some(copy) => Plan::Remove { uid: copy.uid() },
            None => Plan::NotSelected,
        };
    }
    if let Some(foreign) = copy.filter(|c| !is_ours(c)) {
        return Plan::Conflict {
            uid: foreign.uid(),
            version: foreign.resource_version(),
        };
    }
    let Some(source) = source.filter(|s| s.type_.as_deref() == Some(DOCKER_CONFIG_JSON)) else {
        return Plan::SourceMissing;
    };
    let desired = desired(options, source, &name);
    match ours {
        Some(copy) if matches(copy, &desired) => Plan::InSync,
        _ => Plan::Apply(Box::new(desired)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use k8s_openapi::ByteString;

    fn options() -> Options {
        Options {
            source_namespace: "registry-rewriter".into(),
            source_name: "registry-credentials".into(),
            target_name: "registry-credentials".into(),
            selector: None,
        }
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.into());
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        ns
    }

    fn source(version: &str, data: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("registry-credentials".into());
        s.metadata.namespace = Some("registry-rewriter".into());
        s.metadata.resource_version = Some(version.into());
        s.type_ = Some(DOCKER_CONFIG_JSON.into());
        s.data = Some(BTreeMap::from([(
            ".dockerconfigjson".into(),
            ByteString(data.into()),
        )]));
        s
    }

    fn ours(namespace: &str, from: &Secret) -> Secret {
        let mut copy = desired(&options(), from, namespace);
        copy.metadata.uid = Some("uid-1".into());
        copy.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            ..ManagedFieldsEntry::default()
        }]);
        copy
    }

    #[test]
    fn plans() {
        let options = options();
        let team = namespace("team", &[]);
        let v1 = source("1", "{}");
        let v2 = source("2", "{\"auths\":{}}");
        let mut foreign = v1.clone();
        foreign.metadata.namespace = Some("team".into());
        foreign.metadata.uid = Some("uid-f".into());
        let mut labelled_only = ours("team", &v1);
        labelled_only.metadata.managed_fields = None;
        let mut opaque = v1.clone();
        opaque.type_ = Some("Opaque".into());
        let mut deleting = team.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let ignored = namespace("team", &[(IGNORE_NAMESPACE_LABEL, "true")]);

        assert!(matches!(
            plan(&options, &team, Some(&v1), None),
            Plan::Apply(_)
        ));
        assert_eq!(
            plan(&options, &team, Some(&v1), Some(&ours("team", &v1))),
            Plan::InSync
        );
        assert!(matches!(
            plan(&options, &team, Some(&v2), Some(&ours("team", &v1))),
            Plan::Apply(_)
        ));
        assert!(matches!(
            plan(&options, &team, Some(&v1), Some(&foreign)),
            Plan::Conflict { .. }
        ));
        assert!(matches!(
            plan(&options, &team, Some(&v1), Some(&labelled_only)),
            Plan::Conflict { .. }
        ));
        assert_eq!(
            plan(&options, &team, None, Some(&ours("team", &v1))),
            Plan::SourceMissing
        );
        assert_eq!(
            plan(&options, &team, Some(&opaque), None),
            Plan::SourceMissing
        );
        assert_eq!(plan(&options, &deleting, Some(&v1), None), Plan::Leave);
        assert_eq!(
            plan(
                &options,
                &namespace("registry-rewriter", &[]),
                Some(&v1),
                None
            ),
            Plan::Leave
        );
        assert_eq!(
            plan(&options, &namespace("kube-system", &[]), Some(&v1), None),
            Plan::NotSelected
        );
        assert_eq!(
            plan(&options, &ignored, Some(&v1), Some(&ours("team", &v1))),
            Plan::Remove {
                uid: Some("uid-1".into())
            }
        );
        assert_eq!(
            plan(&options, &ignored, Some(&v1), Some(&foreign)),
            Plan::NotSelected
        );
    }

    #[test]
    fn a_selector_narrows_the_namespaces() {
        let options = Options {
            selector: Some(super::super::selector::parse("team=a").unwrap()),
            ..options()
        };
        assert!(options.selects(&namespace("x", &[("team", "a")])));
        assert!(!options.selects(&namespace("y", &[("team", "b")])));
    }
}
