//! What goes in and comes out of a review: the AdmissionReview fixtures, the
//! engine run on an object with its patch applied, the rendered manifests.
#![allow(dead_code)]

pub mod cluster;
pub mod kustomize;
pub mod tools;

use std::path::PathBuf;

use base64::Engine as _;
use registry_rewriter::config::Config;
use registry_rewriter::engine::{self, Mutation, Rules, Scope, Workload};
use serde_json::value::RawValue;
use serde_json::Value;

pub const FIXTURES: &[&str] = &[
    "job-create-kaniko-build.json",
    "pod-create-from-deployment-dry-run.json",
    "pod-create-from-deployment.json",
    "pod-create-kaniko-build.json",
    "pod-create-no-match.json",
    "pod-update-ephemeralcontainers-debug.json",
    "pod-update-labels.json",
];

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).expect("fixture is JSON")
}

/// The Pods from public build catalogs (`tests/fixtures/catalog`).
pub const CATALOG: [&str; 7] = [
    "argo-buildkit-template",
    "argo-buildkit-template-own-credential",
    "tekton-buildah-0.9",
    "tekton-buildkit-daemonless-0.1",
    "tekton-kaniko-0.1",
    "tekton-kaniko-0.6",
    "tekton-kaniko-0.6-dockerconfig",
];

/// One catalog Pod.
pub fn catalog(name: &str) -> Value {
    fixture(&format!("catalog/{name}.json"))
}

pub fn pod() -> &'static Workload {
    Workload::find("", "Pod").expect("Pod is in the table")
}

pub fn job() -> &'static Workload {
    Workload::find("batch", "Job").expect("Job is in the table")
}

pub fn run(object: &Value, workload: &Workload, scope: Scope<'_>, rules: &Rules) -> Mutation {
    let raw = RawValue::from_string(object.to_string()).expect("valid JSON");
    engine::mutate(&raw, workload, scope, rules).expect("the engine accepts the object")
}

/// Would the pre-filter send `object`? A container's command, args or an
/// env value names a rule's source or target host (ASCII case ignored), or
/// its image names a source, or a target while its pod spec lacks a pull
/// secret or the container has a flag some builder profile removes. The
/// pre-filter's test, written here apart from the engine's and the CEL.
pub fn sent_by_the_prefilter(object: &Value, rules: &Rules) -> bool {
    let lower = |hosts: Vec<&String>| -> Vec<String> {
        hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect()
    };
    let sources = lower(rules.rewrites.iter().map(|r| &r.from_host).collect());
    let targets = lower(rules.rewrites.iter().map(|r| &r.to_host).collect());
    let all: Vec<String> = sources.iter().chain(&targets).cloned().collect();
    let removed: Vec<&String> = rules
        .builders
        .iter()
        .flat_map(|b| &b.flags.remove_flags)
        .collect();
    let names = |text: &Value, hosts: &[String]| {
        text.as_str().is_some_and(|t| {
            hosts
                .iter()
                .any(|h| t.to_ascii_lowercase().contains(h.as_str()))
        })
    };
    let specs = [
        &object["spec"],
        &object["spec"]["template"]["spec"],
        &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ];
    specs.iter().any(|spec| {
        let has_secret = |name: &String| {
            spec["imagePullSecrets"]
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s["name"].as_str() == Some(name)))
        };
        let lacks_a_secret = !rules.image_pull_secrets().iter().all(has_secret);
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|list| spec[list].as_array())
            .flatten()
            .any(|c| {
                let lists = [&c["command"], &c["args"]];
                let texts: Vec<&Value> = lists
                    .iter()
                    .filter_map(|l| l.as_array())
                    .flatten()
                    .collect();
                let env = c["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| &e["value"]);
                let removes_a_flag = texts.iter().any(|t| {
                    t.as_str()
                        .is_some_and(|t| removed.iter().any(|f| t.contains(f.as_str())))
                });
                texts.iter().copied().chain(env).any(|t| names(t, &all))
                    || names(&c["image"], &sources)
                    || (names(&c["image"], &targets) && (lacks_a_secret || removes_a_flag))
            })
    })
}

/// Mutates on CREATE, applies the patch to the original, and checks that a
/// second run over the result yields no operation (idempotency), and that
/// an object the pre-filter would not send gets no patch.
pub fn admit_with(object: &Value, workload: &Workload, config: &Config) -> (Value, Mutation) {
    let mutation = run(object, workload, Scope::Create, config.rules());
    if !sent_by_the_prefilter(object, config.rules()) {
        assert!(
            mutation.patch.0.is_empty(),
            "the pre-filter would not send this object, but the engine patches it: {:?}",
            mutation.patch
        );
    }
    let mut admitted = object.clone();
    json_patch::patch(&mut admitted, &mutation.patch).expect("the patch applies to the original");
    let again = run(&admitted, workload, Scope::Create, config.rules());
    assert!(
        again.is_empty(),
        "not idempotent: second run produced {:?}",
        again.patch
    );
    // What is left is left for good: the same values, in the same words.
    let left = |m: &Mutation| {
        let mut left: Vec<_> = m
            .leftovers
            .iter()
            .map(|l| (l.reason, l.registry.clone(), l.value.clone()))
            .collect();
        left.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
        left
    };
    assert_eq!(
        left(&again),
        left(&mutation),
        "leftovers differ after admission"
    );
    (admitted, mutation)
}

pub fn admit(object: &Value, workload: &Workload) -> (Value, Mutation) {
    admit_with(object, workload, &Config::default())
}

/// Decodes an AdmissionReview response and applies its patch to the request object.
pub fn apply_response(request: &Value, response: &Value) -> Value {
    let mut object = request["request"]["object"].clone();
    if let Some(patch) = response["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("patch is base64");
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
        json_patch::patch(&mut object, &patch).expect("patch applies");
    }
    object
}

/// What each fixture's object must look like after admission.
pub fn check_fixture_outcome(name: &str, admitted: &Value, response: &Value) {
    let r = &response["response"];
    assert_eq!(r["allowed"], true, "{name}");
    let has_patch = r.get("patch").is_some();
    assert_eq!(
        has_patch,
        r.get("patchType").is_some(),
        "{name}: patch and patchType go together"
    );
    match name {
        "pod-create-from-deployment.json" | "pod-create-from-deployment-dry-run.json" => {
            assert_eq!(
                admitted["spec"]["containers"][0]["image"],
                "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
            );
            assert_eq!(
                admitted["spec"]["imagePullSecrets"],
                serde_json::json!([{"name": "registry-credentials"}])
            );
        }
        "job-create-kaniko-build.json" | "pod-create-kaniko-build.json" => {
            let spec = if name.starts_with("job") {
                &admitted["spec"]["template"]["spec"]
            } else {
                &admitted["spec"]
            };
            let all: Vec<&str> = spec["containers"][0]["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("string arg"))
                .collect();
            // The registry maps go first; the build's own args follow in order.
            let maps = all
                .iter()
                .take_while(|a| a.starts_with("--registry-map="))
                .count();
            assert_eq!(maps, 3, "{all:?}");
            let args = &all[maps..];
            assert!(args
                .iter()
                .any(|a| a
                    .starts_with("--destination=registry.k8s-lab.dev/dynamic-apps/test-webapp:")));
            assert!(args.contains(&"--cache-repo=registry.k8s-lab.dev/dynamic-apps/cache"));
            assert!(
                !args.iter().any(|a| a.starts_with("--skip-tls-verify")),
                "{args:?}"
            );
            assert!(all.contains(&"--registry-map=docker-registry.registry.svc.cluster.local:5000=registry.k8s-lab.dev"));
            assert_eq!(
                &args[..2],
                ["--dockerfile=Dockerfile", args[1]],
                "order kept"
            );
            assert!(args[1].starts_with("--context="));
            assert_eq!(args[3], "--cache=true");
        }
        "pod-create-no-match.json" | "pod-update-labels.json" => {
            assert!(!has_patch, "{name}: no patch expected");
        }
        "pod-update-ephemeralcontainers-debug.json" => {
            assert_eq!(
                admitted["spec"]["ephemeralContainers"][0]["image"],
                "registry.k8s-lab.dev/tools/netshoot:v0.13"
            );
        }
        other => panic!("no expectation for fixture {other}"),
    }
}

/// Removes every field the engine may change, so that what remains can be
/// compared before and after admission.
pub fn without_rewritable_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove("registry-rewriter.k8s-lab.dev/original-images");
        if annotations.is_empty() {
            object["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    for spec_path in ["/spec", "/spec/template/spec"] {
        let Some(spec) = object.pointer_mut(spec_path).and_then(Value::as_object_mut) else {
            continue;
        };
        spec.remove("imagePullSecrets");
        without_ours(spec, "volumes", |v| {
            v["name"].as_str().is_some_and(is_credential_volume)
        });
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(Value::Array(containers)) = spec.get_mut(list) {
                for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                    container.remove("image");
                    container.remove("args");
                    container.remove("command");
                    without_ours(container, "volumeMounts", |m| {
                        m["name"].as_str().is_some_and(is_credential_volume)
                    });
                    without_ours(container, "env", |e| {
                        e["value"]
                            .as_str()
                            .is_some_and(|v| v.starts_with(CREDENTIAL_MOUNT))
                    });
                }
            }
        }
    }
    object
}

/// The build credential's volume, as the engine names it.
pub fn is_credential_volume(name: &str) -> bool {
    name.starts_with("registry-rewriter-credentials")
}

/// Where the build credential is mounted for builders whose image has no
/// place of its own.
pub const CREDENTIAL_MOUNT: &str = "/var/run/secrets/registry-rewriter";

/// Drops the items of `field` that `ours` says we added, and the list if
/// nothing else is in it.
fn without_ours(
    object: &mut serde_json::Map<String, Value>,
    field: &str,
    ours: impl Fn(&Value) -> bool,
) {
    if let Some(Value::Array(items)) = object.get_mut(field) {
        items.retain(|item| !ours(item));
        if items.is_empty() {
            object.remove(field);
        }
    }
}

pub fn assert_only_rewritable_fields_changed(before: &Value, after: &Value) {
    assert_eq!(
        without_rewritable_fields(before),
        without_rewritable_fields(after),
        "a field other than image, args, command, imagePullSecrets, the build credential or our annotation changed"
    );
}
