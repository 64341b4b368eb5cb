//! Pods from public build catalogs (`tests/fixtures/catalog`, sources in
//! its README), as their controllers make them: each is admitted, and what
//! its build pushes to, which TLS exceptions it keeps and which credential
//! it gets are checked, with everything else of the Pod unchanged.

use crate::objects::{admit, catalog, pod, CATALOG};
use registry_rewriter::engine::ChangeKind;
use rstest::rstest;
use serde_json::Value;

const INTERNAL: &str = "docker-registry.registry.svc.cluster.local:5000";

/// What the build's container gets.
#[derive(Debug)]
enum Credential {
    /// The pull secret, mounted at this path.
    Mounted(&'static str),
    /// None: it brings its own, and a line says so.
    Own,
    /// None: no build of ours (a script), and a line says so.
    LeftAlone,
}

/// The container that runs the build.
fn build_container(pod: &Value) -> (usize, &Value) {
    let containers = pod["spec"]["containers"].as_array().expect("containers");
    containers
        .iter()
        .enumerate()
        .find(|(_, c)| c["name"] == "main" || c["name"] == "step-build-and-push")
        .expect("the build container")
}

#[rstest]
#[case::tekton_kaniko_0_1("tekton-kaniko-0.1", Credential::Own)]
#[case::tekton_kaniko_0_6_without_command(
    "tekton-kaniko-0.6",
    Credential::Mounted("/kaniko/.docker")
)]
#[case::tekton_kaniko_0_6_dockerconfig_workspace("tekton-kaniko-0.6-dockerconfig", Credential::Own)]
#[case::tekton_buildkit_daemonless(
    "tekton-buildkit-daemonless-0.1",
    Credential::Mounted("/var/run/secrets/registry-rewriter")
)]
#[case::tekton_buildah_script("tekton-buildah-0.9", Credential::LeftAlone)]
#[case::argo_buildkit(
    "argo-buildkit-template",
    Credential::Mounted("/var/run/secrets/registry-rewriter")
)]
#[case::argo_buildkit_own_credential("argo-buildkit-template-own-credential", Credential::Own)]
fn catalog_builds(#[case] name: &str, #[case] credential: Credential) {
    let original = catalog(name);
    let (admitted, mutation) = admit(&original, pod());
    let (index, before) = build_container(&original);
    let after = &admitted["spec"]["containers"][index];
    let text = |c: &Value| format!("{}{}", c["command"], c["args"]);
    let warnings = mutation.warnings.join("\n");

    if let Credential::LeftAlone = credential {
        assert!(mutation.patch.0.is_empty(), "{name}: {:?}", mutation.patch);
        assert!(warnings.contains("left unchanged"), "{name}: {warnings}");
        return;
    }
    // The build pushes to the HTTPS registry, with no TLS exception left;
    // the internal name stays only as a key of Kaniko's registry maps.
    let unmapped = text(after).replace(&format!("={INTERNAL}="), "=");
    assert!(!unmapped.contains(INTERNAL), "{name}: {}", text(after));
    assert!(text(after).contains("registry.k8s-lab.dev/team/app:v1"));
    let weakenings = ["--skip-tls-verify", "registry.insecure=true"];
    let held: Vec<&str> = weakenings
        .into_iter()
        .filter(|w| text(before).contains(w))
        .collect();
    assert!(!held.is_empty(), "{name}: the case weakens TLS");
    for weakening in held {
        assert!(!text(after).contains(weakening), "{name}: {weakening} kept");
    }
    // The wrapper's own arguments keep their place and text.
    let separator = |c: &Value| {
        let all: Vec<Value> = [&c["command"], &c["args"]]
            .iter()
            .flat_map(|l| l.as_array().cloned().unwrap_or_default())
            .collect();
        let at = all.iter().position(|a| a == "--").unwrap_or(0);
        all[..at].to_vec()
    };
    assert_eq!(separator(before), separator(after), "{name}");

    let credential_lines = mutation
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::BuildCredential)
        .count();
    match credential {
        Credential::Mounted(path) => {
            assert_eq!(credential_lines, 1, "{name}");
            let mounts = after["volumeMounts"].as_array().expect("mounts");
            assert!(
                mounts
                    .iter()
                    .any(|m| m["mountPath"] == path && m["readOnly"] == true),
                "{name}: {mounts:?}"
            );
        }
        Credential::Own => {
            assert_eq!(credential_lines, 0, "{name}");
            assert!(
                warnings.contains("registry.k8s-lab.dev"),
                "{name}: {warnings}"
            );
            for field in ["env", "volumeMounts"] {
                assert_eq!(before[field], after[field], "{name}: {field}");
            }
            assert_eq!(original["spec"]["volumes"], admitted["spec"]["volumes"]);
        }
        Credential::LeftAlone => unreachable!(),
    }
    // Nothing else of the Pod changes: the other containers, the
    // controller's metadata.
    for list in ["initContainers", "containers"] {
        let others = |p: &Value| {
            let all = p["spec"][list].as_array().cloned().unwrap_or_default();
            all.into_iter()
                .filter(|c| c["name"] != before["name"])
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&original), others(&admitted), "{name}: {list}");
    }
    for key in ["labels", "ownerReferences", "name"] {
        assert_eq!(original["metadata"][key], admitted["metadata"][key]);
    }
}

/// Every catalog Pod has a case above.
#[test]
fn every_catalog_pod_has_a_case() {
    let source = include_str!("catalogs.rs");
    for name in CATALOG {
        assert!(source.contains(&format!("\"{name}\",")), "{name}");
    }
    let files = std::fs::read_dir(crate::objects::fixtures_dir().join("catalog"))
        .expect("the catalog")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(files, CATALOG.len());
}
