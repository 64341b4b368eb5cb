//! The engine's rules, case by case. Every case applies the patch to the
//! original object and checks the result, and re-runs the engine on that
//! result to prove it yields no further operation.

use crate::objects;

use objects::{admit, admit_with, assert_only_rewritable_fields_changed, job, pod, run};
use registry_rewriter::config::Config;
use registry_rewriter::engine::ORIGINAL_IMAGES_ANNOTATION;
use registry_rewriter::engine::{self, ChangeKind, Scope, Workload};
use rstest::rstest;
use serde_json::value::RawValue;
use serde_json::{json, Value};

const EXTERNAL: &str = "registry.k8s-lab.dev";
const DIGEST: &str = "sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001";

fn pod_with_image(image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

fn kaniko_pod(args: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "build"},
        "spec": {"containers": [{
            "name": "kaniko",
            "image": "gcr.io/kaniko-project/executor:v1.23.2",
            "args": args
        }]}
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn without_maps(args: Vec<String>) -> Vec<String> {
    args.into_iter()
        .filter(|a| !a.starts_with("--registry-map="))
        .collect()
}

fn registry_maps() -> Vec<String> {
    [
        "docker-registry.registry.svc.cluster.local:5000",
        "docker-registry.registry.svc:5000",
        "docker-registry.registry:5000",
    ]
    .iter()
    .map(|host| format!("--registry-map={host}={EXTERNAL}"))
    .collect()
}

#[rstest]
#[case::full_service_name(
    "docker-registry.registry.svc.cluster.local:5000/dynamic-apps/web:v1",
    "registry.k8s-lab.dev/dynamic-apps/web:v1"
)]
#[case::svc_short_name(
    "docker-registry.registry.svc:5000/team/app:1.0",
    "registry.k8s-lab.dev/team/app:1.0"
)]
#[case::namespace_short_name("docker-registry.registry:5000/app", "registry.k8s-lab.dev/app")]
#[case::upper_case_host(
    "DOCKER-REGISTRY.Registry.svc.cluster.local:5000/app:v1",
    "registry.k8s-lab.dev/app:v1"
)]
#[case::digest_kept(
    "docker-registry.registry:5000/app@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001",
    "registry.k8s-lab.dev/app@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001"
)]
#[case::tag_and_digest_kept(
    "docker-registry.registry:5000/a/b/c:v1.2-rc_3@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001",
    "registry.k8s-lab.dev/a/b/c:v1.2-rc_3@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001"
)]
fn internal_images_are_rewritten(#[case] image: &str, #[case] expected: &str) {
    let original = pod_with_image(image);
    let (admitted, mutation) = admit(&original, pod());
    assert_eq!(admitted["spec"]["containers"][0]["image"], expected);
    assert_eq!(
        mutation.changes[0].message,
        format!("containers[app].image: {image} -> {expected}")
    );
    assert_eq!(mutation.changes[0].kind, ChangeKind::Image);
    assert_only_rewritable_fields_changed(&original, &admitted);
}

#[rstest]
#[case::other_port("docker-registry.registry.svc.cluster.local:50001/app:v1")]
#[case::no_port("docker-registry.registry.svc.cluster.local/app:v1")]
#[case::longer_host("mydocker-registry.registry.svc.cluster.local:5000/app")]
#[case::host_as_suffix("docker-registry.registry.svc.cluster.local.evil.io:5000/app")]
#[case::host_in_path("evil.io/docker-registry.registry/app")]
#[case::docker_hub("nginx:1.27")]
#[case::external_already("registry.k8s-lab.dev/dynamic-apps/web:v1")]
#[case::short_name_without_namespace("docker-registry:5000/app")]
fn other_images_are_left_alone(#[case] image: &str) {
    let original = pod_with_image(image);
    let (admitted, mutation) = admit(&original, pod());
    assert_eq!(admitted["spec"]["containers"][0]["image"], image);
    assert!(mutation.warnings.is_empty(), "{:?}", mutation.warnings);
    assert!(mutation.changes.iter().all(|c| c.kind != ChangeKind::Image));
}

#[rstest]
#[case::port_with_domain("docker-registry.registry.svc.cluster.local:5000.evil.io/app")]
#[case::internal_host_in_path("evil.io/docker-registry.registry.svc.cluster.local:5000/app")]
#[case::trailing_dot("docker-registry.registry.svc.cluster.local.:5000/app")]
#[case::unicode_look_alike("docker-registry.registry.svc.cluster.lоcal:5000/app")]
#[case::at_in_host("user@docker-registry.registry:5000/app")]
#[case::upper_case_path("docker-registry.registry:5000/App")]
fn unparsable_references_are_left_alone_with_a_warning(#[case] image: &str) {
    let original = pod_with_image(image);
    let (admitted, mutation) = admit(&original, pod());
    assert_eq!(admitted, original, "nothing may change");
    assert_eq!(mutation.warnings.len(), 1, "{:?}", mutation.warnings);
    assert!(mutation.warnings[0].starts_with("containers[app].image: left unchanged"));
}

#[test]
fn a_ten_kilobyte_reference_is_refused_not_rewritten() {
    let image = format!("docker-registry.registry:5000/{}:v1", "a".repeat(10_000));
    let original = pod_with_image(&image);
    let (admitted, mutation) = admit(&original, pod());
    assert_eq!(admitted, original);
    assert!(
        mutation.warnings[0].len() < 400,
        "warnings stay short: {}",
        mutation.warnings[0].len()
    );
}

#[test]
fn every_container_list_is_rewritten() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init", "image": "docker-registry.registry:5000/init:1"}],
            "containers": [
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "docker-registry.registry.svc:5000/b:2"}
            ],
            "ephemeralContainers": [{"name": "debug", "image": "docker-registry.registry:5000/tools:3"}]
        }
    });
    let (admitted, mutation) = admit(&original, pod());
    let spec = &admitted["spec"];
    assert_eq!(
        spec["initContainers"][0]["image"],
        "registry.k8s-lab.dev/init:1"
    );
    assert_eq!(spec["containers"][0]["image"], "nginx");
    assert_eq!(spec["containers"][1]["image"], "registry.k8s-lab.dev/b:2");
    assert_eq!(
        spec["ephemeralContainers"][0]["image"],
        "registry.k8s-lab.dev/tools:3"
    );
    let recorded: Value = serde_json::from_str(
        admitted["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION]
            .as_str()
            .expect("annotation"),
    )
    .expect("annotation is JSON");
    assert_eq!(
        recorded,
        json!({
            "containers[b]": "docker-registry.registry.svc:5000/b:2",
            "initContainers[init]": "docker-registry.registry:5000/init:1",
            "ephemeralContainers[debug]": "docker-registry.registry:5000/tools:3"
        })
    );
    assert_eq!(
        mutation.changes.len(),
        4,
        "three images and one pull secret"
    );
}

#[test]
fn jobs_are_rewritten_in_their_pod_template() {
    let original = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "annotations": {"a": "b"}},
        "spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {
            "containers": [{"name": "c", "image": "docker-registry.registry:5000/app:1"}],
            "restartPolicy": "Never"
        }}}
    });
    let (admitted, mutation) = admit(&original, job());
    let spec = &admitted["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["image"], "registry.k8s-lab.dev/app:1");
    // No list is created in a template: its Pods get ours at their own
    // admission, after the ServiceAccount plugin has filled theirs.
    assert!(spec.get("imagePullSecrets").is_none(), "{spec}");
    assert!(
        mutation.warnings.iter().any(|w| w
            .starts_with("imagePullSecrets: registry-credentials not added to the pod template")),
        "{:?}",
        mutation.warnings
    );
    assert_eq!(admitted["metadata"]["annotations"]["a"], "b");
    assert!(admitted["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION].is_string());
    assert_only_rewritable_fields_changed(&original, &admitted);
}

/// A template that has a list gets ours appended; its Pods then arrive
/// with that list, and the ServiceAccount plugin leaves it as it is.
#[test]
fn a_template_with_pull_secrets_gets_ours_appended() {
    let original = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "docker-registry.registry:5000/app:1"}],
            "imagePullSecrets": [{"name": "vendor-creds"}],
            "restartPolicy": "Never"
        }}}
    });
    let (admitted, _) = admit(&original, job());
    assert_eq!(
        admitted["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "vendor-creds"}, {"name": "registry-credentials"}])
    );
}

#[test]
fn kinds_not_enabled_are_left_alone_and_enabling_is_one_line() {
    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "docker-registry.registry:5000/app:1"}]
        }}}}}
    });
    let workload = Workload::find("batch", "CronJob").expect("in the table");
    let enabled = Config::from_yaml("kinds: [Pod, Job, CronJob]").expect("valid");
    assert!(!Config::default().rules().is_kind_enabled("CronJob"));
    let (admitted, _) = admit_with(&cron_job, workload, &enabled);
    assert_eq!(
        admitted.pointer("/spec/jobTemplate/spec/template/spec/containers/0/image"),
        Some(&json!("registry.k8s-lab.dev/app:1"))
    );
}

#[rstest]
#[case::absent(json!(null), json!([{"name": "registry-credentials"}]))]
#[case::other_first(json!([{"name": "other"}]), json!([{"name": "other"}, {"name": "registry-credentials"}]))]
#[case::already_there(json!([{"name": "registry-credentials"}, {"name": "x"}]), json!([{"name": "registry-credentials"}, {"name": "x"}]))]
fn pull_secrets_are_appended_once(#[case] existing: Value, #[case] expected: Value) {
    let mut original = pod_with_image("docker-registry.registry:5000/app:v1");
    if !existing.is_null() {
        original["spec"]["imagePullSecrets"] = existing;
    }
    let (admitted, _) = admit(&original, pod());
    assert_eq!(admitted["spec"]["imagePullSecrets"], expected);
}

#[test]
fn pull_secrets_follow_images_already_on_the_external_registry() {
    let (admitted, mutation) = admit(&pod_with_image("registry.k8s-lab.dev/app:v1"), pod());
    assert_eq!(
        admitted["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    assert_eq!(mutation.changes.len(), 1);
    assert!(
        admitted["metadata"].get("annotations").is_none(),
        "no image was replaced"
    );
}

#[test]
fn no_pull_secret_without_an_image_on_the_external_registry() {
    let original = pod_with_image("nginx:1.27");
    let mutation = run(&original, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
    assert!(mutation.changes.is_empty());
}

#[test]
fn skip_annotation_leaves_the_object_alone() {
    let mut original = pod_with_image("docker-registry.registry:5000/app:v1");
    original["metadata"]["annotations"] = json!({"registry-rewriter.k8s-lab.dev/skip": "true"});
    let mutation = run(&original, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.skipped);
    assert!(mutation.is_empty());
    original["metadata"]["annotations"] = json!({"registry-rewriter.k8s-lab.dev/skip": "false"});
    assert!(!run(&original, pod(), Scope::Create, Config::default().rules()).is_empty());
}

#[test]
fn annotation_pointer_is_escaped_and_annotations_are_created() {
    let original = pod_with_image("docker-registry.registry:5000/app:v1");
    let mutation = run(&original, pod(), Scope::Create, Config::default().rules());
    let patch = serde_json::to_value(&mutation.patch).expect("serialises");
    let added = patch
        .as_array()
        .expect("array")
        .iter()
        .find(|op| op["path"] == "/metadata/annotations")
        .expect("annotations are created when absent");
    assert!(added["value"][ORIGINAL_IMAGES_ANNOTATION].is_string());

    let mut with_annotations = original.clone();
    with_annotations["metadata"]["annotations"] = json!({"team~a/owner": "x"});
    let mutation = run(
        &with_annotations,
        pod(),
        Scope::Create,
        Config::default().rules(),
    );
    let patch = serde_json::to_value(&mutation.patch).expect("serialises");
    assert!(patch
        .as_array()
        .expect("array")
        .iter()
        .any(|op| op["path"]
            == "/metadata/annotations/registry-rewriter.k8s-lab.dev~1original-images"));
    let (admitted, _) = admit(&with_annotations, pod());
    assert_eq!(admitted["metadata"]["annotations"]["team~a/owner"], "x");
}

#[test]
fn object_without_metadata_gets_metadata() {
    let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "image": "docker-registry.registry:5000/x"}]}});
    let (admitted, _) = admit(&original, pod());
    assert!(admitted["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION].is_string());
}

#[test]
fn reinvocation_rewrites_an_injected_sidecar_despite_our_annotation() {
    let original = pod_with_image("docker-registry.registry:5000/app:v1");
    let (mut admitted, _) = admit(&original, pod());
    // Another webhook injects a sidecar from the internal registry after us.
    admitted["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "sidecar", "image": "docker-registry.registry.svc:5000/proxy:2"}));
    let (reinvoked, mutation) = admit(&admitted, pod());
    assert_eq!(
        reinvoked["spec"]["containers"][1]["image"],
        "registry.k8s-lab.dev/proxy:2"
    );
    assert_eq!(
        mutation.changes.len(),
        1,
        "the pull secret is already there"
    );
    let recorded: Value = serde_json::from_str(
        reinvoked["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON");
    assert_eq!(
        recorded["containers[app]"],
        "docker-registry.registry:5000/app:v1"
    );
    assert_eq!(
        recorded["containers[sidecar]"],
        "docker-registry.registry.svc:5000/proxy:2"
    );
}

#[test]
fn unknown_fields_survive() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "futureField": {"deep": [1, 2.5, "x"]}},
        "spec": {
            "futureSpecField": true,
            "containers": [{"name": "a", "image": "docker-registry.registry:5000/x:1", "futureContainerField": {"k": null}}]
        },
        "status": {"phase": "Pending", "futureStatus": 1}
    });
    let (admitted, _) = admit(&original, pod());
    assert_eq!(
        admitted["metadata"]["futureField"],
        original["metadata"]["futureField"]
    );
    assert_eq!(admitted["spec"]["futureSpecField"], true);
    assert_eq!(
        admitted["spec"]["containers"][0]["futureContainerField"],
        json!({"k": null})
    );
    assert_eq!(admitted["status"], original["status"]);
    assert_only_rewritable_fields_changed(&original, &admitted);
}

#[test]
fn path_prefix_rules_match_whole_components() {
    let config = Config::from_yaml(
        "rewrites:\n- {from: 'internal.example:5000/team', to: 'registry.example/mirror/team'}\n",
    )
    .expect("valid");
    for (image, expected) in [
        (
            "internal.example:5000/team/app:v1",
            "registry.example/mirror/team/app:v1",
        ),
        (
            "internal.example:5000/team:v1",
            "registry.example/mirror/team:v1",
        ),
        (
            "internal.example:5000/teams/app:v1",
            "internal.example:5000/teams/app:v1",
        ),
        (
            "internal.example:5000/other/app",
            "internal.example:5000/other/app",
        ),
    ] {
        let (admitted, _) = admit_with(&pod_with_image(image), pod(), &config);
        assert_eq!(
            admitted["spec"]["containers"][0]["image"], expected,
            "{image}"
        );
    }
}

// --- Kaniko ----------------------------------------------------------------

#[test]
fn kaniko_seed_build_is_moved_to_https() {
    let original = kaniko_pod(json!([
        "--dockerfile=Dockerfile",
        "--context=dir:///workspace",
        "--destination=docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v2",
        "--cache=true",
        "--cache-repo=docker-registry.registry.svc.cluster.local:5000/dynamic-apps/cache",
        "--skip-tls-verify",
        "--skip-tls-verify-pull"
    ]));
    let (admitted, mutation) = admit(&original, pod());
    let mut expected = registry_maps();
    expected.extend([
        "--dockerfile=Dockerfile".to_owned(),
        "--context=dir:///workspace".to_owned(),
        "--destination=registry.k8s-lab.dev/dynamic-apps/test-webapp:v2".to_owned(),
        "--cache=true".to_owned(),
        "--cache-repo=registry.k8s-lab.dev/dynamic-apps/cache".to_owned(),
    ]);
    assert_eq!(
        strings(&admitted["spec"]["containers"][0]["args"]),
        expected
    );
    assert_eq!(
        admitted["spec"]["containers"][0]["image"],
        "gcr.io/kaniko-project/executor:v1.23.2"
    );
    assert!(
        admitted["spec"].get("imagePullSecrets").is_none(),
        "the Kaniko image is not on our registry"
    );
    let kinds: Vec<ChangeKind> = mutation.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == ChangeKind::BuildArg).count(),
        2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ChangeKind::BuildFlagRemoved)
            .count(),
        2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ChangeKind::RegistryMap)
            .count(),
        3
    );
}

/// The Kaniko pod's args after admission: the registry maps, then `expected`.
fn assert_kaniko_args_become(args: Value, expected: Value) {
    let (admitted, _) = admit(&kaniko_pod(args), pod());
    let mut with_maps = registry_maps();
    with_maps.extend(strings(&expected));
    assert_eq!(
        strings(&admitted["spec"]["containers"][0]["args"]),
        with_maps
    );
}

#[rstest]
#[case::equals(json!(["--destination=docker-registry.registry:5000/a:1"]), json!(["--destination=registry.k8s-lab.dev/a:1"]))]
#[case::separate(json!(["--destination", "docker-registry.registry:5000/a:1"]), json!(["--destination", "registry.k8s-lab.dev/a:1"]))]
#[case::short_equals(json!(["-d=docker-registry.registry:5000/a:1"]), json!(["-d=registry.k8s-lab.dev/a:1"]))]
#[case::short_separate(json!(["-d", "docker-registry.registry:5000/a:1"]), json!(["-d", "registry.k8s-lab.dev/a:1"]))]
#[case::short_glued(json!(["-ddocker-registry.registry:5000/a:1"]), json!(["-dregistry.k8s-lab.dev/a:1"]))]
#[case::several_destinations(
    json!(["-d=docker-registry.registry:5000/a:1", "--destination=docker.io/me/a:1", "--destination", "docker-registry.registry.svc:5000/a:latest"]),
    json!(["-d=registry.k8s-lab.dev/a:1", "--destination=docker.io/me/a:1", "--destination", "registry.k8s-lab.dev/a:latest"])
)]
#[case::cache_repo(json!(["--cache-repo", "docker-registry.registry:5000/cache"]), json!(["--cache-repo", "registry.k8s-lab.dev/cache"]))]
#[case::mirror_bare(json!(["--registry-mirror=docker-registry.registry:5000"]), json!(["--registry-mirror=registry.k8s-lab.dev"]))]
#[case::mirror_with_path(json!(["--registry-mirror", "docker-registry.registry.svc:5000/hub"]), json!(["--registry-mirror", "registry.k8s-lab.dev/hub"]))]
#[case::map_to_an_internal_mirror(
    json!(["--registry-map=index.docker.io=docker-registry.registry:5000/hub,mirror.gcr.io;quay.io=other.example"]),
    json!(["--registry-map=index.docker.io=registry.k8s-lab.dev/hub,mirror.gcr.io;quay.io=other.example"])
)]
#[case::bool_flags(
    json!(["--skip-tls-verify=true", "--insecure", "--context=dir:///w", "--insecure-pull=false", "--skip-tls-verify-pull", "--destination=registry.k8s-lab.dev/a:1"]),
    json!(["--context=dir:///w", "--destination=registry.k8s-lab.dev/a:1"])
)]
#[case::insecure_registry_named(
    json!(["--insecure-registry=docker-registry.registry:5000", "--insecure-registry", "docker-registry.registry.svc.cluster.local:5000", "--insecure-registry=other.local:5000", "-d=docker-registry.registry:5000/a"]),
    json!(["--insecure-registry=other.local:5000", "-d=registry.k8s-lab.dev/a"])
)]
#[case::skip_tls_verify_registry(
    json!(["--skip-tls-verify-registry", "docker-registry.registry.svc:5000", "--skip-tls-verify-registry=quay.io", "-d=registry.k8s-lab.dev/a"]),
    json!(["--skip-tls-verify-registry=quay.io", "-d=registry.k8s-lab.dev/a"])
)]
#[case::value_that_looks_like_a_flag(
    json!(["--build-arg", "--insecure", "--label", "-d=x", "-d=docker-registry.registry:5000/a"]),
    json!(["--build-arg", "--insecure", "--label", "-d=x", "-d=registry.k8s-lab.dev/a"])
)]
fn kaniko_flag_forms(#[case] args: Value, #[case] expected: Value) {
    assert_kaniko_args_become(args, expected);
}

/// New flags go first, right after the executable: at the end they could
/// become the value of a trailing flag that takes one, or follow `--`.
#[rstest]
#[case::after_double_dash(json!(["--skip-tls-verify", "-d=docker-registry.registry:5000/a", "--", "--insecure"]), json!(["-d=registry.k8s-lab.dev/a", "--", "--insecure"]))]
#[case::dangling_value_flag(json!(["-d=docker-registry.registry:5000/a", "--oci-layout-path"]), json!(["-d=registry.k8s-lab.dev/a", "--oci-layout-path"]))]
#[case::dangling_unknown_flag(json!(["-d=docker-registry.registry:5000/a", "--some-future-flag"]), json!(["-d=registry.k8s-lab.dev/a", "--some-future-flag"]))]
fn new_flags_go_first_where_nothing_can_take_them_as_a_value(
    #[case] args: Value,
    #[case] expected: Value,
) {
    assert_kaniko_args_become(args, expected);
}

#[test]
fn existing_registry_maps_are_respected() {
    let args = json!([
        "-d=docker-registry.registry:5000/a",
        "--registry-map=docker-registry.registry.svc:5000=mirror.example;index.docker.io=mirror.gcr.io",
        "--registry-map",
        "DOCKER-REGISTRY.registry:5000=elsewhere.example"
    ]);
    let (admitted, mutation) = admit(&kaniko_pod(args), pod());
    let args = strings(&admitted["spec"]["containers"][0]["args"]);
    assert_eq!(
        args.first().map(String::as_str),
        Some("--registry-map=docker-registry.registry.svc.cluster.local:5000=registry.k8s-lab.dev")
    );
    assert_eq!(args.len(), 5);
    assert_eq!(
        mutation
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::RegistryMap)
            .count(),
        1
    );
}

#[test]
fn kaniko_detected_by_command_with_flags_in_command() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
        "spec": {"containers": [{
            "name": "builder",
            "image": "internal.example/tools/kaniko-wrapper:1",
            "command": ["/kaniko/executor", "--destination=docker-registry.registry:5000/a:1", "--insecure"]
        }]}
    });
    let (admitted, mutation) = admit(&original, pod());
    let container = &admitted["spec"]["containers"][0];
    let mut expected = vec!["/kaniko/executor".to_owned()];
    expected.extend(registry_maps());
    expected.push("--destination=registry.k8s-lab.dev/a:1".to_owned());
    assert_eq!(
        strings(&container["command"]),
        expected,
        "the maps go right after the executable"
    );
    assert!(container.get("args").is_none(), "no args are created");
    assert!(mutation.changes[0]
        .message
        .starts_with("containers[builder].command: --destination"));
    assert!(mutation.changes.iter().any(|c| c
        .message
        .starts_with("containers[builder].command: added --registry-map=")));
}

#[test]
fn value_split_between_command_and_args() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
        "spec": {"containers": [{
            "name": "k", "image": "cgr.dev/chainguard/kaniko:latest",
            "command": ["/kaniko/executor", "--destination"],
            "args": ["docker-registry.registry:5000/a:1"]
        }]}
    });
    let (admitted, _) = admit(&original, pod());
    let args = strings(&admitted["spec"]["containers"][0]["args"]);
    assert_eq!(args[0], "registry.k8s-lab.dev/a:1");
}

#[rstest]
#[case::chainguard("cgr.dev/chainguard/kaniko:latest")]
#[case::osscontainertools_short("martizih/kaniko:v1.27.0-debug")]
#[case::osscontainertools_full("docker.io/martizih/kaniko@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001")]
#[case::original_debug("gcr.io/kaniko-project/executor:debug")]
fn kaniko_forks_are_recognised(#[case] image: &str) {
    let mut original = kaniko_pod(json!(["-d=docker-registry.registry:5000/a"]));
    original["spec"]["containers"][0]["image"] = json!(image);
    let (admitted, _) = admit(&original, pod());
    assert_eq!(
        without_maps(strings(&admitted["spec"]["containers"][0]["args"])),
        ["-d=registry.k8s-lab.dev/a"]
    );
}

#[test]
fn non_kaniko_args_are_never_touched() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{
            "name": "tool", "image": "docker.io/library/alpine:3",
            "command": ["/bin/push"],
            "args": ["--destination=docker-registry.registry:5000/a", "--skip-tls-verify"]
        }]}
    });
    let mutation = run(&original, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
}

#[test]
fn kaniko_in_a_shell_wrapper_is_left_alone_with_a_warning() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{
            "name": "k", "image": "gcr.io/kaniko-project/executor:debug",
            "command": ["/busybox/sh", "-c"],
            "args": ["/kaniko/executor --destination=docker-registry.registry:5000/a --skip-tls-verify"]
        }]}
    });
    let mutation = run(&original, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
    assert_eq!(mutation.warnings.len(), 1);
    assert!(mutation.warnings[0].contains("/busybox/sh"));
}

#[test]
fn kaniko_pushing_elsewhere_without_insecure_flags_is_untouched() {
    let original = kaniko_pod(json!([
        "--destination=docker.io/me/app:1",
        "--context=dir:///w"
    ]));
    assert!(run(&original, pod(), Scope::Create, Config::default().rules()).is_empty());
}

#[test]
fn registry_map_can_be_turned_off() {
    let config = Config::from_yaml("kaniko: {registryMap: false}").expect("valid");
    let (admitted, _) = admit_with(
        &kaniko_pod(json!(["-d=docker-registry.registry:5000/a"])),
        pod(),
        &config,
    );
    assert_eq!(
        strings(&admitted["spec"]["containers"][0]["args"]),
        ["-d=registry.k8s-lab.dev/a"]
    );
}

// --- Scope: kubectl debug ----------------------------------------------------

#[test]
fn ephemeral_update_rewrites_only_new_ephemeral_containers() {
    let old = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "app", "image": "docker-registry.registry:5000/app:1"}],
            "ephemeralContainers": [{"name": "old-debug", "image": "docker-registry.registry:5000/tools:1"}]
        }
    });
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "new-debug", "image": "docker-registry.registry:5000/tools:2"}));
    let old_raw = RawValue::from_string(old.to_string()).expect("JSON");
    let scope = Scope::NewEphemeralContainers {
        old_object: Some(&old_raw),
    };
    let mutation = run(&new, pod(), scope, Config::default().rules());
    let mut admitted = new.clone();
    json_patch::patch(&mut admitted, &mutation.patch).expect("applies");
    let spec = &admitted["spec"];
    assert_eq!(
        spec["ephemeralContainers"][1]["image"],
        "registry.k8s-lab.dev/tools:2"
    );
    assert_eq!(
        spec["ephemeralContainers"][0]["image"], "docker-registry.registry:5000/tools:1",
        "existing ones may not change"
    );
    assert_eq!(
        spec["containers"][0]["image"], "docker-registry.registry:5000/app:1",
        "only ephemeral containers"
    );
    assert!(
        spec.get("imagePullSecrets").is_none(),
        "the API server would drop it on this subresource"
    );
    assert!(admitted["metadata"].get("annotations").is_none());
    assert_eq!(mutation.changes.len(), 1);
}

// --- Objects of the wrong shape ------------------------------------------------

#[rstest]
#[case::containers_not_a_list(json!({"spec": {"containers": 5}}), "spec.containers: invalid type")]
#[case::image_not_a_string(json!({"spec": {"containers": [{"name": "a", "image": 5}]}}), "spec.containers[0].image: invalid type")]
#[case::args_not_strings(json!({"spec": {"containers": [{"name": "a", "args": [1]}]}}), "spec.containers[0].args[0]: invalid type")]
#[case::spec_not_an_object(json!({"spec": "x"}), "spec: invalid type")]
#[case::spec_as_an_array(json!({"spec": [[{"name": "a", "image": "docker-registry.registry:5000/a"}]]}), "spec: invalid type")]
#[case::container_as_an_array(json!({"spec": {"containers": [["a", "docker-registry.registry:5000/a"]]}}), "spec.containers[0]: invalid type")]
#[case::annotations_not_strings(json!({"metadata": {"annotations": {"a": 1}}}), "metadata.annotations.a: invalid type")]
#[case::duplicate_field(json!(null), "duplicate field `image`")]
fn wrong_shapes_are_reported_with_the_field(#[case] object: Value, #[case] expected: &str) {
    let text = if object.is_null() {
        r#"{"spec":{"containers":[{"name":"a","image":"x","image":"y"}]}}"#.to_owned()
    } else {
        object.to_string()
    };
    let raw = RawValue::from_string(text).expect("JSON");
    let error =
        engine::mutate(&raw, pod(), Scope::Create, Config::default().rules()).expect_err("refused");
    assert!(
        error.to_string().contains(expected),
        "{error} should contain {expected}"
    );
}

#[test]
fn job_template_of_the_wrong_shape_names_the_path() {
    let raw = RawValue::from_string(r#"{"spec":{"template":[1]}}"#.into()).expect("JSON");
    let error =
        engine::mutate(&raw, job(), Scope::Create, Config::default().rules()).expect_err("refused");
    assert_eq!(error.field, "spec.template");
}

#[test]
fn deep_nesting_is_handled_without_recursion() {
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // In a field the engine does not read: skipped, and the object is fine.
    let unread = format!(
        r#"{{"spec":{{"x":{deep},"containers":[{{"name":"a","image":"docker-registry.registry:5000/a"}}]}}}}"#
    );
    let raw = RawValue::from_string(unread).expect("JSON");
    let mutation =
        engine::mutate(&raw, pod(), Scope::Create, Config::default().rules()).expect("accepted");
    assert!(!mutation.is_empty());
    // In a field the engine reads: refused at the first wrong type.
    let read = format!(r#"{{"spec":{{"containers":{deep}}}}}"#);
    let raw = RawValue::from_string(read).expect("JSON");
    let error =
        engine::mutate(&raw, pod(), Scope::Create, Config::default().rules()).expect_err("refused");
    assert!(error.to_string().contains("containers[0]"), "{error}");
}

#[test]
fn null_fields_are_treated_as_absent() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": null},
        "spec": {"initContainers": null, "imagePullSecrets": null, "containers": [
            {"name": "k", "image": "gcr.io/kaniko-project/executor:v1", "args": null, "command": null},
            {"name": "a", "image": "docker-registry.registry:5000/a"}
        ]}
    });
    let (admitted, _) = admit(&original, pod());
    assert_eq!(
        admitted["spec"]["containers"][1]["image"],
        "registry.k8s-lab.dev/a"
    );
    assert_eq!(
        admitted["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    assert!(admitted["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION].is_string());
}

#[test]
fn escaped_strings_are_read_correctly() {
    // The API server's JSON encoder escapes <, > and &; so may anything else.
    let text = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"k","image":"gcr.io\/kaniko-project\/executor:v1","args":["--build-arg=A=\u0026b","--destination=docker-registry.registry:5000\/a:1"]}]}}"#;
    let raw = RawValue::from_string(text.to_owned()).expect("JSON");
    let mutation =
        engine::mutate(&raw, pod(), Scope::Create, Config::default().rules()).expect("ok");
    let mut admitted: Value = serde_json::from_str(text).expect("JSON");
    json_patch::patch(&mut admitted, &mutation.patch).expect("applies");
    let args = without_maps(strings(&admitted["spec"]["containers"][0]["args"]));
    assert_eq!(args[0], "--build-arg=A=&b");
    assert_eq!(args[1], "--destination=registry.k8s-lab.dev/a:1");
}

#[test]
fn digest_only_reference_formats_back_identically() {
    let image = format!("docker-registry.registry:5000/app@{DIGEST}");
    let (admitted, _) = admit(&pod_with_image(&image), pod());
    assert_eq!(
        admitted["spec"]["containers"][0]["image"],
        format!("{EXTERNAL}/app@{DIGEST}")
    );
}
