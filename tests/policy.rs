//! The generated MutatingAdmissionPolicies against the webhook, through
//! kube-apiserver's own plugins (the `apiserver-admit` harness): every
//! fixture and every case of the engine's tables is admitted once by the
//! webhook plugin calling our server and once by the policy plugin running
//! `registry-rewriter policy`'s CEL, and the admitted objects must be equal.
//! Each difference the README documents ("Webhook or policy") has its own
//! test.

mod apiserver_admit;
mod live_server;
mod objects;

use std::sync::LazyLock;

use apiserver_admit::{Admission, Call, Harness};
use objects::{catalog, fixture, CATALOG, FIXTURES};
use prop::sample::select;
use proptest::prelude::*;
use registry_rewriter::config::Config;
use registry_rewriter::policy::{self, ApiVersion};
use rstest::rstest;
use serde_json::{json, Value};

/// The default configuration's policies and bindings.
static POLICIES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    policy::render(Config::default().rules(), ApiVersion::V1)
        .expect("the default rules have a policy")
});

fn yaml(objects: &[&Value]) -> String {
    objects
        .iter()
        .map(|object| format!("---\n{}", serde_yaml_ng::to_string(object).expect("YAML")))
        .collect()
}

/// The policy and its binding: one for every kind and `kubectl debug`.
fn policy_for(_call: &Call<'_>) -> String {
    let objects: Vec<&Value> = POLICIES.iter().collect();
    assert_eq!(objects.len(), 2, "a policy and its binding");
    yaml(&objects)
}

/// The policy and the webhook on the same request, side by side.
struct Both {
    webhook: Admission,
    policy: Admission,
}

fn both(call: Call<'_>) -> Option<Both> {
    both_with(call, &policy_for(&call))
}

fn both_with(call: Call<'_>, policies: &str) -> Option<Both> {
    let binary = apiserver_admit::find()?;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(live_server::start());
    let webhook = Harness::webhook(binary.clone(), &server);
    let policy = Harness::policy(binary, policies);
    let (webhook, policy) = std::thread::scope(|scope| {
        let policy = scope.spawn(|| policy.admit(call));
        (webhook.admit(call), policy.join().expect("policy run"))
    });
    Some(Both { webhook, policy })
}

/// Both admitted the object, the policy without an error, and equally;
/// both answers, for more checks.
fn assert_equal(call: Call<'_>) -> Option<Both> {
    let both = both(call)?;
    assert_eq!(both.webhook.code, 0, "webhook: {}", both.webhook.stderr);
    assert_eq!(both.policy.code, 0, "policy: {}", both.policy.stderr);
    assert_eq!(both.policy.policy_errors(), Vec::<&str>::new());
    assert_eq!(
        both.policy.admitted, both.webhook.admitted,
        "the policy's object (left) differs from the webhook's (right)"
    );
    Some(both)
}

fn pod_with(containers: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team"},
        "spec": {"containers": containers}
    })
}

fn pod_with_image(image: &str) -> Value {
    pod_with(json!([{"name": "app", "image": image}]))
}

fn build_pod(image: &str, command: Value, args: Value) -> Value {
    let mut container = json!({"name": "build", "image": image});
    if !command.is_null() {
        container["command"] = command;
    }
    if !args.is_null() {
        container["args"] = args;
    }
    pod_with(json!([container]))
}

#[rstest]
#[case::job_create_kaniko_build(FIXTURES[0])]
#[case::pod_create_from_deployment_dry_run(FIXTURES[1])]
#[case::pod_create_from_deployment(FIXTURES[2])]
#[case::pod_create_kaniko_build(FIXTURES[3])]
#[case::pod_create_no_match(FIXTURES[4])]
#[case::pod_update_ephemeralcontainers_debug(FIXTURES[5])]
#[case::pod_update_labels(FIXTURES[6])]
fn fixtures(#[case] name: &str) {
    let review = fixture(name);
    assert_equal(Call::of_review(&review));
}

/// The Pods of public build catalogs (`tests/fixtures/catalog`).
#[rstest]
fn catalog_pods(#[values(0, 1, 2, 3, 4, 5, 6)] index: usize) {
    assert_equal(Call::create(&catalog(CATALOG[index]), "team"));
}

#[test]
fn every_fixture_has_a_row() {
    assert_eq!(FIXTURES.len(), 7);
}

const DIGEST: &str = "sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001";

#[rstest]
// Rewritten.
#[case::full_service_name("docker-registry.registry.svc.cluster.local:5000/dynamic-apps/web:v1")]
#[case::svc_short_name("docker-registry.registry.svc:5000/team/app:1.0")]
#[case::namespace_short_name("docker-registry.registry:5000/app")]
#[case::upper_case_host("DOCKER-REGISTRY.Registry.svc.cluster.local:5000/app:v1")]
#[case::digest_kept(&format!("docker-registry.registry:5000/app@{DIGEST}"))]
#[case::tag_and_digest_kept(&format!("docker-registry.registry:5000/a/b/c:v1.2-rc_3@{DIGEST}"))]
#[case::port_with_leading_zero("docker-registry.registry:05000/app:v1")]
#[case::separators_in_path("docker-registry.registry:5000/a.b/c__d/e---f/g_h:T_1.x-y")]
#[case::longest_tag(&format!("docker-registry.registry:5000/app:{}", "t".repeat(128)))]
#[case::longest_name(&format!("docker-registry.registry:5000/{}", "a".repeat(255 - 30)))]
// Left alone.
#[case::other_port("docker-registry.registry.svc.cluster.local:50001/app:v1")]
#[case::no_port("docker-registry.registry.svc.cluster.local/app:v1")]
#[case::longer_host("mydocker-registry.registry.svc.cluster.local:5000/app")]
#[case::host_as_suffix("docker-registry.registry.svc.cluster.local.evil.io:5000/app")]
#[case::host_in_path("evil.io/docker-registry.registry/app")]
#[case::docker_hub("nginx:1.27")]
#[case::external_already("registry.k8s-lab.dev/dynamic-apps/web:v1")]
#[case::short_name_without_namespace("docker-registry:5000/app")]
#[case::no_path("docker-registry.registry:5000")]
// Rejected by the grammar, so left alone.
#[case::port_with_domain("docker-registry.registry.svc.cluster.local:5000.evil.io/app")]
#[case::internal_host_in_path("evil.io/docker-registry.registry.svc.cluster.local:5000/app")]
#[case::trailing_dot("docker-registry.registry.svc.cluster.local.:5000/app")]
#[case::unicode_look_alike("docker-registry.registry.svc.cluster.lоcal:5000/app")]
#[case::kelvin_sign_in_host("doc\u{212A}er-registry.registry:5000/app")]
#[case::at_in_host("user@docker-registry.registry:5000/app")]
#[case::upper_case_path("docker-registry.registry:5000/App")]
#[case::tag_too_long(&format!("docker-registry.registry:5000/app:{}", "t".repeat(129)))]
#[case::name_too_long(&format!("docker-registry.registry:5000/{}", "a".repeat(255 - 29)))]
#[case::short_digest("docker-registry.registry:5000/app@sha256:abc")]
#[case::port_out_of_range("docker-registry.registry:65536/app")]
#[case::empty_path_component("docker-registry.registry:5000//app")]
#[case::empty("")]
fn images(#[case] image: &str) {
    assert_equal(Call::create(&pod_with_image(image), "team"));
}

#[rstest]
#[case::init_and_app(json!([{"name": "app", "image": "busybox"}]), json!([{"name": "init", "image": "docker-registry.registry:5000/init:1"}]))]
#[case::same_image_twice(json!([{"name": "a", "image": "docker-registry.registry:5000/x:1"}, {"name": "b", "image": "docker-registry.registry:5000/x:1"}]), json!(null))]
#[case::unnamed_container(json!([{"image": "docker-registry.registry:5000/x:1"}]), json!(null))]
#[case::quote_in_name(json!([{"name": "a\"b\\c", "image": "docker-registry.registry:5000/x:1"}]), json!(null))]
fn containers_and_labels(#[case] containers: Value, #[case] init: Value) {
    let mut pod = pod_with(containers);
    if !init.is_null() {
        pod["spec"]["initContainers"] = init;
    }
    assert_equal(Call::create(&pod, "team"));
}

#[rstest]
#[case::absent(json!("absent"))]
#[case::null(json!(null))]
#[case::empty(json!([]))]
#[case::other_first(json!([{"name": "other"}]))]
#[case::already_there(json!([{"name": "registry-credentials"}, {"name": "x"}]))]
#[case::unnamed_entry(json!([{}]))]
fn pull_secrets(#[case] existing: Value, #[values(true, false)] on_internal_registry: bool) {
    let image = if on_internal_registry {
        "docker-registry.registry:5000/app:v1"
    } else {
        "registry.k8s-lab.dev/app:v1"
    };
    let mut pod = pod_with_image(image);
    if existing != json!("absent") {
        pod["spec"]["imagePullSecrets"] = existing;
    }
    assert_equal(Call::create(&pod, "team"));
}

/// A Kaniko image copied to the HTTPS registry, in a Pod that has the pull
/// secret already: sent for the flag the engine removes, and both back ends
/// remove it; with nothing to remove, both leave the Pod as it is.
#[rstest]
#[case::a_flag_to_remove(json!(["--destination=quay.io/team/app:1", "--skip-tls-verify"]), true)]
#[case::nothing_to_do(json!(["--destination=quay.io/team/app:1"]), false)]
fn a_mirrored_builder_with_the_pull_secret(#[case] args: Value, #[case] changed: bool) {
    let image = "registry.k8s-lab.dev/kaniko-project/executor:v1.23.2";
    let mut pod = build_pod(image, json!(["/kaniko/executor"]), args.clone());
    pod["spec"]["imagePullSecrets"] = json!([{"name": "registry-credentials"}]);
    let Some(both) = assert_equal(Call::create(&pod, "team")) else {
        return;
    };
    let admitted = &both.policy.admitted["spec"]["containers"][0]["args"];
    assert_eq!(admitted != &args, changed, "{admitted}");
}

#[test]
fn pull_secrets_are_not_added_for_other_registries() {
    assert_equal(Call::create(&pod_with_image("nginx:1.27"), "team"));
}

#[rstest]
#[case::skipped("true")]
#[case::not_skipped("false")]
fn skip_annotation(#[case] value: &str) {
    let mut pod = pod_with_image("docker-registry.registry:5000/app:v1");
    pod["metadata"]["annotations"] = json!({"registry-rewriter.k8s-lab.dev/skip": value});
    assert_equal(Call::create(&pod, "team"));
}

#[rstest]
#[case::absent(json!(null))]
#[case::other_annotations(json!({"team": "a"}))]
#[case::earlier_round(json!({"registry-rewriter.k8s-lab.dev/original-images": "{\"containers[old]\":\"docker-registry.registry:5000/old:1\"}"}))]
#[case::earlier_round_same_label(json!({"registry-rewriter.k8s-lab.dev/original-images": "{\"containers[app]\":\"docker-registry.registry:5000/first:1\"}"}))]
#[case::empty_map(json!({"registry-rewriter.k8s-lab.dev/original-images": "{}"}))]
fn original_images_annotation(#[case] annotations: Value) {
    let mut pod = pod_with_image("docker-registry.registry:5000/app:v1");
    if !annotations.is_null() {
        pod["metadata"]["annotations"] = annotations;
    }
    assert_equal(Call::create(&pod, "team"));
}

const KANIKO: &str = "gcr.io/kaniko-project/executor:v1.23.2";

#[rstest]
#[case::equals(json!(["--destination=docker-registry.registry:5000/a:1"]))]
#[case::separate(json!(["--destination", "docker-registry.registry:5000/a:1"]))]
#[case::shorthand(json!(["-d", "docker-registry.registry:5000/a:1"]))]
#[case::shorthand_equals(json!(["-d=docker-registry.registry:5000/a:1"]))]
#[case::shorthand_glued(json!(["-ddocker-registry.registry:5000/a:1"]))]
#[case::cache_repo(json!(["--cache-repo=docker-registry.registry.svc:5000/cache", "--destination=registry.k8s-lab.dev/a:1"]))]
#[case::registry_mirror(json!(["--registry-mirror=docker-registry.registry:5000/mirror", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::remove_flags(json!(["--skip-tls-verify", "--skip-tls-verify-pull=true", "--insecure", "--insecure-pull", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::insecure_registry_internal(json!(["--insecure-registry=docker-registry.registry:5000", "--skip-tls-verify-registry", "docker-registry.registry.svc:5000", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::insecure_registry_other(json!(["--insecure-registry=other.local:5000", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::value_that_looks_like_a_flag(json!(["--build-arg", "--skip-tls-verify", "--destination", "docker-registry.registry:5000/a:1"]))]
#[case::value_flag_chain(json!(["--destination", "--destination", "docker-registry.registry:5000/a:1"]))]
#[case::after_double_dash(json!(["--destination=docker-registry.registry:5000/a:1", "--", "--skip-tls-verify", "--destination=docker-registry.registry:5000/b:1"]))]
#[case::double_dash_as_a_value(json!(["--build-arg", "--", "--skip-tls-verify"]))]
#[case::flag_at_the_end_without_value(json!(["--skip-tls-verify", "--destination"]))]
#[case::registry_map_present(json!(["--registry-map=docker-registry.registry:5000=registry.k8s-lab.dev", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::registry_map_to_an_internal_mirror(json!(["--registry-map=index.docker.io=docker-registry.registry:5000/hub,mirror.gcr.io;quay.io", "--registry-map", "quay.io=DOCKER-REGISTRY.registry.svc:5000", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::registry_map_only_to_an_internal_mirror(json!(["--registry-map=docker-registry.registry:5000=x;docker-registry.registry.svc:5000=y;docker-registry.registry.svc.cluster.local:5000=z;index.docker.io=docker-registry.registry:5000"]))]
#[case::fork_push_subcommand(json!(["push", "/workspace/image.tar", "--skip-tls-verify", "-d", "docker-registry.registry:5000/a:1"]))]
#[case::registry_map_several_in_one(json!(["--registry-map", "DOCKER-registry.registry.svc:5000=x;docker-registry.registry.svc.cluster.local:5000=y", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::already_on_target(json!(["--destination=registry.k8s-lab.dev/a:1"]))]
#[case::other_registry(json!(["--destination=docker.io/me/a:1", "--skip-tls-verify"]))]
#[case::unparsable_destination(json!(["--destination=docker-registry.registry:5000/App:1"]))]
#[case::no_args(json!(null))]
fn kaniko(#[case] args: Value) {
    assert_equal(Call::create(&build_pod(KANIKO, Value::Null, args), "team"));
}

#[rstest]
#[case::executor_in_command(json!(["/kaniko/executor"]), json!(["--destination=docker-registry.registry:5000/a:1"]))]
#[case::flags_in_command(json!(["/kaniko/executor", "--skip-tls-verify", "--destination"]), json!(["docker-registry.registry:5000/a:1"]))]
#[case::other_program_in_the_image(json!(["/bin/sh", "-c"]), json!(["--destination=docker-registry.registry:5000/a:1"]))]
#[case::executor_from_another_image(json!(["/kaniko/executor"]), json!(["--destination=docker-registry.registry:5000/a:1", "--insecure"]))]
fn kaniko_commands(#[case] command: Value, #[case] args: Value) {
    assert_equal(Call::create(&build_pod(KANIKO, command, args), "team"));
}

const BUILDKIT: &str = "moby/buildkit:v0.18.2-rootless";
const BUILDAH: &str = "quay.io/buildah/stable:v1.38";

#[rstest]
#[case::output_with_insecure(json!(["build", "--frontend", "dockerfile.v0", "--output", "type=image,name=docker-registry.registry:5000/team/app:v1,push=true,registry.insecure=true"]))]
#[case::output_inline(json!(["build", "--output=type=image,name=docker-registry.registry.svc:5000/a:1,push=true"]))]
#[case::shorthand(json!(["build", "-o", "type=image,registry.insecure=true,name=docker-registry.registry:5000/a:1,push=true"]))]
#[case::export_and_import_cache(json!(["build", "--export-cache", "type=registry,ref=docker-registry.registry:5000/team/cache,mode=max,registry.insecure=true", "--import-cache=type=registry,ref=docker-registry.registry:5000/team/cache,registry.insecure=true"]))]
#[case::already_external_insecure_goes(json!(["build", "--output", "type=image,name=registry.k8s-lab.dev/a:1,push=true,registry.insecure=true"]))]
#[case::other_registry_insecure_stays(json!(["build", "--output", "type=image,name=other.local:5000/a:1,push=true,registry.insecure=true"]))]
#[case::upper_case_keys(json!(["build", "--output", "type=image,NAME=docker-registry.registry:5000/a:1,Registry.Insecure=true"]))]
#[case::global_flags_before_the_subcommand(json!(["--addr", "tcp://buildkitd:1234", "build", "--opt", "build-arg:X=--output", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
#[case::other_subcommand(json!(["du", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
#[case::value_that_looks_like_the_subcommand(json!(["--addr", "build", "prune", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
#[case::quoted_names_all_internal(json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1,docker-registry.registry:5000/a:latest\",push=true,registry.insecure=true"]))]
#[case::quoted_names_mixed(json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1,docker.io/me/a:1\",push=true,registry.insecure=true"]))]
#[case::other_fields_keep_their_quotes(json!(["build", "--output", "\"type=image\",name=docker-registry.registry:5000/a:1,\"annotation.x=a,b\",push=true"]))]
#[case::doubled_quote(json!(["build", "--output", "\"annotation.x=a\"\"b\",\"name=docker-registry.registry:5000/a:1\",registry.insecure=true"]))]
#[case::quote_in_a_name(json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a\"\"x\""]))]
#[case::bare_quote(json!(["build", "--output", "type=image,na\"me=docker-registry.registry:5000/a:1"]))]
#[case::unclosed_quote(json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1"]))]
#[case::text_after_a_quote(json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1\"x,push=true"]))]
fn buildkit(#[case] args: Value) {
    let pod = build_pod(BUILDKIT, json!(["buildctl-daemonless.sh"]), args);
    assert_equal(Call::create(&pod, "team"));
}

#[rstest]
#[case::push_with_transport(json!(["push", "--tls-verify=false", "app", "docker://docker-registry.registry:5000/team/app:v1"]))]
#[case::push_one_image(json!(["push", "--tls-verify=false", "docker-registry.registry.svc:5000/team/app:v1"]))]
#[case::push_source_and_destination(json!(["push", "--tls-verify=false", "docker-registry.registry:5000/app:v1", "docker://docker-registry.registry:5000/app:v1"]))]
#[case::pull(json!(["pull", "--tls-verify=false", "docker-registry.registry:5000/base:1"]))]
#[case::from_with_global_flags(json!(["--storage-driver", "vfs", "from", "--name", "work", "--tls-verify=false", "docker-registry.registry:5000/base:1"]))]
#[case::push_elsewhere_keeps_the_flag(json!(["push", "--tls-verify=false", "app", "docker://other.local:5000/app:v1"]))]
#[case::other_transport_is_no_registry(json!(["push", "app", "oci:/tmp/app"]))]
#[case::creds_value_that_looks_like_a_flag(json!(["push", "--creds", "--tls-verify=false", "app", "docker://docker-registry.registry:5000/app:v1"]))]
#[case::bud_tags(json!(["bud", "--tls-verify=false", "-t", "docker-registry.registry:5000/app:v1", "--cache-from=docker-registry.registry:5000/cache", "."]))]
#[case::tls_verify_twice(json!(["push", "--tls-verify=false", "--tls-verify=0", "docker-registry.registry:5000/app:v1"]))]
#[case::tls_verify_true_kept(json!(["push", "--tls-verify=true", "docker-registry.registry:5000/app:v1"]))]
fn buildah(#[case] args: Value) {
    assert_equal(Call::create(
        &build_pod(BUILDAH, json!(["buildah"]), args),
        "team",
    ));
}

#[rstest]
#[case::tekton_kaniko(json!(["/tekton/bin/entrypoint"]), json!(["-wait_file", "/tekton/downward/ready", "-entrypoint", "/kaniko/executor", "--", "--destination=docker-registry.registry:5000/a:1", "--skip-tls-verify"]))]
#[case::tekton_entrypoint_equals(json!(["/tekton/bin/entrypoint"]), json!(["-entrypoint=/kaniko/executor", "--", "--destination", "docker-registry.registry:5000/a:1"]))]
#[case::tekton_buildah(json!(["/tekton/bin/entrypoint"]), json!(["-entrypoint", "buildah", "--", "push", "--tls-verify=false", "docker-registry.registry:5000/a:1"]))]
#[case::tekton_other_program(json!(["/tekton/bin/entrypoint"]), json!(["-entrypoint", "/bin/sh", "--", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::tekton_without_separator(json!(["/tekton/bin/entrypoint"]), json!(["-entrypoint", "/kaniko/executor", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::argo_buildkit(json!(["/var/run/argo/argoexec", "emissary", "--loglevel", "info", "--", "buildctl-daemonless.sh"]), json!(["build", "--output", "type=image,name=docker-registry.registry:5000/a:1,registry.insecure=true"]))]
#[case::argo_kaniko_all_in_command(json!(["argoexec", "emissary", "--", "/kaniko/executor", "--destination=docker-registry.registry:5000/a:1"]), json!(null))]
#[case::argo_without_emissary(json!(["argoexec", "--", "/kaniko/executor", "--destination=docker-registry.registry:5000/a:1"]), json!(null))]
fn wrappers(#[case] command: Value, #[case] args: Value) {
    let pod = build_pod("docker.io/library/alpine:3", command, args);
    assert_equal(Call::create(&pod, "team"));
}

#[test]
fn a_job_with_a_build_and_an_init_container() {
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "build", "namespace": "team"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "fetch", "image": "docker-registry.registry.svc:5000/tools/git:2"}],
            "containers": [{"name": "build", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1", "--skip-tls-verify"]}]
        }}}
    });
    assert_equal(Call::create(&job, "team"));
}

/// `kubectl debug` adds an ephemeral container to a pod that already has
/// one: only the new one is rewritten, and nothing else of the pod.
#[test]
fn only_new_ephemeral_containers() {
    let mut old = pod_with_image("docker-registry.registry:5000/app:v1");
    old["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger-1", "image": "docker-registry.registry:5000/tools:1"}]);
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "debugger-2", "image": "docker-registry.registry:5000/tools:2", "args": ["--skip-tls-verify"]}));
    let call = Call {
        operation: "UPDATE",
        old_object: Some(&old),
        subresource: Some("ephemeralcontainers"),
        ..Call::create(&new, "team")
    };
    assert_equal(call);
}

#[rstest]
#[case::excluded_namespace("kube-system", "")]
#[case::ignored_namespace("team", "registry-rewriter.k8s-lab.dev/ignore=true")]
fn namespaces_left_alone(#[case] namespace: &str, #[case] labels: &str) {
    let mut pod = pod_with_image("docker-registry.registry:5000/app:v1");
    pod["metadata"]["namespace"] = json!(namespace);
    let call = Call {
        namespace_labels: labels,
        ..Call::create(&pod, namespace)
    };
    let Some(both) = both(call) else { return };
    assert_eq!(both.policy.admitted, both.webhook.admitted);
    assert_eq!(
        both.policy.admitted["spec"]["containers"][0]["image"],
        "docker-registry.registry:5000/app:v1"
    );
    assert!(
        !both.policy.stderr.contains("PolicyInvocation"),
        "not even invoked"
    );
}

/// Build credentials, each way a container can get or keep one: the same
/// volume, mounts and variables from both back ends, and the same
/// containers left alone.
#[rstest]
#[case::kaniko_gets_the_mount(json!([
    {"name": "build", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1"]}
]), json!(null), Some("registry-rewriter-credentials"))]
#[case::buildkit_gets_mount_and_variable(json!([
    {"name": "build", "image": BUILDKIT, "command": ["buildctl-daemonless.sh"],
     "args": ["build", "--output", "type=image,name=docker-registry.registry:5000/a:1,push=true"]}
]), json!(null), Some("registry-rewriter-credentials"))]
#[case::buildah_push_gets_its_auth_file(json!([
    {"name": "build", "image": BUILDAH, "command": ["buildah"],
     "args": ["push", "--tls-verify=false", "localhost/a:1", "docker://docker-registry.registry:5000/a:1"]}
]), json!(null), Some("registry-rewriter-credentials"))]
#[case::our_volume_name_taken(json!([
    {"name": "build", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1"]}
]), json!([{"name": "registry-rewriter-credentials", "emptyDir": {}}]), Some("registry-rewriter-credentials-1"))]
#[case::own_docker_config(json!([
    {"name": "build", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1"],
     "env": [{"name": "DOCKER_CONFIG", "value": "/workspace/.docker"}]}
]), json!(null), None)]
#[case::own_mount_above_the_path(json!([
    {"name": "build", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1"],
     "volumeMounts": [{"name": "own", "mountPath": "/kaniko"}]}
]), json!([{"name": "own", "emptyDir": {}}]), None)]
#[case::buildah_own_authfile(json!([
    {"name": "build", "image": BUILDAH, "command": ["buildah"],
     "args": ["push", "--authfile", "/run/own/auth.json", "localhost/a:1", "docker://docker-registry.registry:5000/a:1"]}
]), json!(null), None)]
#[case::two_builds_share_one_volume(json!([
    {"name": "a", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/a:1"]},
    {"name": "b", "image": KANIKO, "args": ["--destination=docker-registry.registry:5000/b:1"]}
]), json!(null), Some("registry-rewriter-credentials"))]
#[case::a_build_elsewhere_gets_none(json!([
    {"name": "build", "image": KANIKO, "args": ["--destination=quay.io/team/a:1"]},
    {"name": "app", "image": "docker-registry.registry:5000/app:1"}
]), json!(null), None)]
fn build_credentials(
    #[case] containers: Value,
    #[case] volumes: Value,
    #[case] ours: Option<&str>,
) {
    let mut pod = pod_with(containers);
    if !volumes.is_null() {
        pod["spec"]["volumes"] = volumes;
    }
    let Some(both) = both(Call::create(&pod, "team")) else {
        return;
    };
    assert_eq!(both.policy.policy_errors(), Vec::<&str>::new());
    assert_eq!(both.policy.admitted, both.webhook.admitted);
    let secret_volumes: Vec<&str> = both.policy.admitted["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["secret"]["secretName"] == "registry-credentials")
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(secret_volumes, ours.into_iter().collect::<Vec<_>>());
}

/// BuildKit CSV with quoted fields (several names in one `name=`, BuildKit's
/// own form for pushing to two registries): rewritten alike, its quotes kept.
#[test]
fn quoted_buildkit_csv_is_rewritten_alike() {
    let output = "type=image,\"name=docker-registry.registry:5000/a:1,docker-registry.registry:5000/a:latest\",push=true";
    let pod = build_pod(
        BUILDKIT,
        json!(["buildctl"]),
        json!(["build", "--output", output]),
    );
    let Some(both) = both(Call::create(&pod, "team")) else {
        return;
    };
    assert_eq!(both.policy.policy_errors(), Vec::<&str>::new());
    assert_eq!(both.policy.admitted, both.webhook.admitted);
    assert_eq!(
        both.policy.admitted["spec"]["containers"][0]["args"][2],
        json!(
            "type=image,\"name=registry.k8s-lab.dev/a:1,registry.k8s-lab.dev/a:latest\",push=true"
        )
    );
}

/// Kaniko's settings in the environment (`KANIKO_REGISTRY_MIRROR`): the
/// webhook rewrites them, the policy leaves them as they are (README,
/// "Webhook or policy"); everything else is admitted alike.
#[test]
fn kanikos_settings_in_env_are_the_documented_difference() {
    let mut pod = build_pod(
        "ghcr.io/osscontainertools/kaniko:v1.27.0",
        Value::Null,
        json!(["--destination=docker-registry.registry:5000/a:1"]),
    );
    let mirror =
        json!({"name": "KANIKO_REGISTRY_MIRROR", "value": "docker-registry.registry:5000/hub"});
    pod["spec"]["containers"][0]["env"] = json!([mirror]);
    let Some(mut both) = both(Call::create(&pod, "team")) else {
        return;
    };
    let env = |admission: &Admission| admission.admitted["spec"]["containers"][0]["env"][0].clone();
    assert_eq!(env(&both.policy), mirror);
    assert_eq!(env(&both.webhook)["value"], "registry.k8s-lab.dev/hub");
    both.webhook.admitted["spec"]["containers"][0]["env"][0] = mirror;
    assert_eq!(both.policy.admitted, both.webhook.admitted);
}

// --- Generated pods ---------------------------------------------------------

/// References near the rules' boundaries: every internal name in mixed
/// case, the target, near misses, and text the grammar rejects.
fn reference() -> impl Strategy<Value = String> {
    let registry = prop_oneof![
        select(vec![
            "docker-registry.registry.svc.cluster.local:5000",
            "docker-registry.registry.svc:5000",
            "docker-registry.registry:5000",
        ])
        .prop_flat_map(|host| {
            prop::collection::vec(prop::bool::weighted(0.15), host.len()).prop_map(move |upper| {
                host.chars()
                    .zip(upper)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                    .collect::<String>()
            })
        }),
        select(vec![
            "registry.k8s-lab.dev",
            "REGISTRY.k8s-lab.dev",
            "docker.io",
            "docker-registry.registry:50001",
            "docker-registry.registry:05000",
            "docker-registry.registry",
            "mydocker-registry.registry:5000",
            "docker-registry.registry.evil.io:5000",
            "localhost:5000",
        ])
        .prop_map(str::to_owned),
    ];
    let component = r"[a-z0-9]{1,3}([._-][a-z0-9]{1,3})?|App|a__b|a\.-b";
    let path = prop::collection::vec(component, 1..3).prop_map(|c| c.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,6}|-x|");
    let digest = prop::option::of(select(vec![
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:short",
    ]));
    let with_registry = prop::bool::weighted(0.85);
    (with_registry, registry, path, tag, digest).prop_map(
        |(with_registry, registry, path, tag, digest)| {
            let mut text = if with_registry {
                format!("{registry}/{path}")
            } else {
                path
            };
            if let Some(tag) = tag {
                text = format!("{text}:{tag}");
            }
            if let Some(digest) = digest {
                text = format!("{text}@{digest}");
            }
            text
        },
    )
}

/// Arguments from every builder's vocabulary, in any order, so that values
/// that look like flags, `--` and glued shorthands all come up.
fn argument() -> impl Strategy<Value = String> {
    let flag = select(vec![
        "--destination",
        "-d",
        "--cache-repo",
        "--registry-mirror",
        "--insecure-registry",
        "--skip-tls-verify",
        "--insecure",
        "--build-arg",
        "--registry-map",
        "--",
        "-",
        "build",
        "push",
        "pull",
        "bud",
        "-t",
        "--tls-verify=false",
        "--output",
        "-o",
        "--creds",
        "--addr",
        "--frontend",
    ])
    .prop_map(str::to_owned);
    let inline = (
        select(vec![
            "--destination=",
            "-d",
            "-d=",
            "--cache-repo=",
            "--registry-mirror=",
            "--insecure-registry=",
            "-t=",
            "--tag=",
        ]),
        reference(),
    )
        .prop_map(|(flag, value)| format!("{flag}{value}"));
    // Unquoted, several names in one quoted field, and other fields quoted.
    let csv = (
        reference(),
        prop::option::of(reference()),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(name, second, insecure, quoted_other)| {
            let names = match second {
                Some(second) => format!("\"name={name},{second}\""),
                None => format!("name={name}"),
            };
            let kind = if quoted_other {
                "\"type=image\""
            } else {
                "type=image"
            };
            let mut text = format!("{kind},{names},push=true");
            if insecure {
                text.push_str(",registry.insecure=true");
            }
            text
        });
    let transport = reference().prop_map(|r| format!("docker://{r}"));
    prop_oneof![3 => flag, 2 => reference(), 2 => inline, 1 => csv, 1 => transport]
}

fn generated_container() -> impl Strategy<Value = Value> {
    let image = prop_oneof![
        3 => reference(),
        1 => select(vec![KANIKO, BUILDKIT, BUILDAH, "cgr.dev/chainguard/kaniko:latest"]).prop_map(str::to_owned),
    ];
    let command = prop::option::of(select(vec![
        vec!["/kaniko/executor"],
        vec!["buildah"],
        vec!["buildctl-daemonless.sh"],
        vec!["/bin/sh", "-c"],
        vec!["argoexec", "emissary", "--", "/kaniko/executor"],
        vec!["/tekton/bin/entrypoint", "-entrypoint", "buildah", "--"],
    ]));
    let args = prop::option::of(prop::collection::vec(argument(), 0..7));
    (image, command, args).prop_map(|(image, command, args)| {
        let mut container = json!({"image": image});
        if let Some(command) = command {
            container["command"] = json!(command);
        }
        if let Some(args) = args {
            container["args"] = json!(args);
        }
        container
    })
}

fn generated_pod() -> impl Strategy<Value = Value> {
    let secrets = prop::option::of(select(vec![
        json!([]),
        json!([{"name": "other"}]),
        json!([{"name": "registry-credentials"}]),
    ]));
    (
        prop::collection::vec(generated_container(), 1..4),
        prop::collection::vec(generated_container(), 0..2),
        secrets,
    )
        .prop_map(|(containers, init, secrets)| {
            let name = |list: Vec<Value>, prefix: &str| -> Value {
                let named: Vec<Value> = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        c["name"] = json!(format!("{prefix}{i}"));
                        c
                    })
                    .collect();
                json!(named)
            };
            let mut pod = pod_with(name(containers, "c"));
            if !init.is_empty() {
                pod["spec"]["initContainers"] = name(init, "i");
            }
            if let Some(secrets) = secrets {
                pod["spec"]["imagePullSecrets"] = secrets;
            }
            pod
        })
}

/// How many Pods to generate: `POLICY_PROPERTY_CASES`, else 200.
fn policy_cases() -> u32 {
    std::env::var("POLICY_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
fn generated_pods_are_admitted_alike() {
    if apiserver_admit::find().is_none() {
        return;
    }
    let config = ProptestConfig {
        cases: policy_cases(),
        failure_persistence: None,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    };
    proptest!(config, |(pod in generated_pod())| {
        let Some(both) = both(Call::create(&pod, "team")) else { return Ok(()) };
        prop_assert_eq!(both.webhook.code, 0, "{}", both.webhook.stderr);
        prop_assert_eq!(both.policy.code, 0, "{}", both.policy.stderr);
        prop_assert_eq!(both.policy.policy_errors(), Vec::<&str>::new());
        prop_assert_eq!(&both.policy.admitted, &both.webhook.admitted, "pod: {}", pod);
    });
}

// --- Together, versions, cost --------------------------------------------------

/// Both installed: the policy plugin runs first, so the webhook is called
/// on an object that has converged and sends no patch; a Pod whose images
/// the policy moved, with nothing left to do, is not sent to it at all (the
/// pre-filter), while a build still names a rule registry and is.
#[rstest]
#[case::kaniko_pod(FIXTURES[3], true)]
#[case::kaniko_job(FIXTURES[0], true)]
#[case::deployment_pod(FIXTURES[2], false)]
fn with_both_installed_the_webhook_has_nothing_left_to_do(#[case] name: &str, #[case] sent: bool) {
    let Some(binary) = apiserver_admit::find() else {
        return;
    };
    let review = fixture(name);
    let call = Call::of_review(&review);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(live_server::start());
    let together = Harness::webhook(binary.clone(), &server)
        .with_policy(&policy_for(&call))
        .admit(call);
    let calls = runtime.block_on(server.requests_seen());
    let webhook_alone = Harness::webhook(binary, &server).admit(call);
    assert_eq!(together.code, 0, "{}", together.stderr);
    assert_eq!(together.policy_errors(), Vec::<&str>::new());
    assert_eq!(together.admitted, webhook_alone.admitted);
    let mutations: Vec<&str> = together
        .stderr
        .lines()
        .filter(|l| l.starts_with("Mutation: "))
        .collect();
    assert!(
        mutations
            .iter()
            .any(|l| l.contains("plugin=MutatingAdmissionPolicy")),
        "the policy changed the object: {mutations:?}"
    );
    assert!(
        !mutations
            .iter()
            .any(|l| l.contains("plugin=MutatingAdmissionWebhook")),
        "the webhook changed nothing: {mutations:?}"
    );
    assert_eq!(calls >= 1.0, sent, "webhook calls with the policy: {calls}");
    assert!(
        runtime.block_on(server.requests_seen()) > calls,
        "alone, the webhook was called"
    );
}

/// The v1beta1 objects (Kubernetes 1.34 and 1.35) do the same.
#[test]
fn v1beta1_policies_do_the_same() {
    let Some(binary) = apiserver_admit::find() else {
        return;
    };
    let objects = policy::render(Config::default().rules(), ApiVersion::V1beta1).expect("rendered");
    assert!(objects
        .iter()
        .all(|o| o["apiVersion"] == "admissionregistration.k8s.io/v1beta1"));
    let policies = yaml(&objects.iter().collect::<Vec<_>>());
    let review = fixture(FIXTURES[3]);
    let call = Call::of_review(&review);
    let beta = Harness::policy(binary.clone(), &policies).admit(call);
    let v1 = Harness::policy(binary, &policy_for(&call)).admit(call);
    assert_eq!(beta.code, 0, "{}", beta.stderr);
    assert_eq!(beta.policy_errors(), Vec::<&str>::new());
    assert_eq!(beta.admitted, v1.admitted);
    assert_ne!(
        beta.admitted, review["request"]["object"],
        "it rewrote the build"
    );
}

/// A Pod of 100 containers with 50 arguments each (three of them Kaniko
/// builds, the rest applications on the internal registry) stays inside
/// the CEL cost budgets: a budget exceeded is a policy error, which the
/// harness reports even under failurePolicy Ignore. How many builder
/// arguments one Pod may carry is measured in docs/performance.md.
#[test]
fn a_large_pod_stays_within_the_cost_budgets() {
    let build_args: Vec<String> = (0..50)
        .map(|i| match i % 5 {
            0 => format!("--destination=docker-registry.registry:5000/team/app-{i}:v1"),
            1 => "--skip-tls-verify".to_owned(),
            2 => "--build-arg".to_owned(),
            3 => format!("VERSION={i}"),
            _ => format!("--label=build={i}"),
        })
        .collect();
    let app_args: Vec<String> = (0..50).map(|i| format!("--option-{i}=value-{i}")).collect();
    let containers: Vec<Value> = (0..100)
        .map(|i| match i % 33 {
            0 => json!({"name": format!("build-{i}"), "image": KANIKO, "args": build_args}),
            _ => json!({
                "name": format!("app-{i}"),
                "image": format!("docker-registry.registry.svc:5000/team/app-{i}:v1"),
                "args": app_args,
            }),
        })
        .collect();
    let pod = pod_with(json!(containers));
    let Some(both) = both(Call::create(&pod, "team")) else {
        return;
    };
    assert_eq!(both.policy.policy_errors(), Vec::<&str>::new());
    assert_eq!(both.policy.admitted, both.webhook.admitted);
    let build = &both.policy.admitted["spec"]["containers"][99]["args"];
    assert_eq!(build[0], MAPS_FIRST);
}

/// A Pod of 100 Kaniko builds with 50 internal destinations each: every
/// argument is rewritten, and the walk's three steps each stay within what
/// one CEL call may spend. The policy's object is the webhook's.
#[test]
fn a_pod_of_100_builds_of_50_destinations_is_rewritten() {
    let pod = pod_with(json!(builds(100, 50)));
    let Some(both) = assert_equal(Call::create(&pod, "team")) else {
        return;
    };
    let last = &both.policy.admitted["spec"]["containers"][99]["args"];
    assert_eq!(last[0], MAPS_FIRST);
    assert_eq!(
        last.as_array().expect("args").last(),
        Some(&json!("--destination=registry.k8s-lab.dev/team/app-49:v1"))
    );
}

/// Past what one CEL call may spend, the policy fails open: the Pod is
/// admitted unchanged (failurePolicy Ignore), never blocked.
#[test]
fn past_the_budget_the_policy_fails_open() {
    let containers = builds(100, 150);
    let pod = pod_with(json!(containers));
    let Some(binary) = apiserver_admit::find() else {
        return;
    };
    let call = Call::create(&pod, "team");
    let admission = Harness::policy(binary, &policy_for(&call)).admit(call);
    assert_eq!(admission.code, 0, "admitted: {}", admission.stderr);
    assert!(
        admission.stderr.contains("cost limit exceeded"),
        "{}",
        admission.stderr
    );
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["args"],
        containers[0]["args"]
    );
}

/// `count` Kaniko containers, each pushing to `destinations` images on the
/// internal registry.
fn builds(count: usize, destinations: usize) -> Vec<Value> {
    let args: Vec<String> = (0..destinations)
        .map(|i| format!("--destination=docker-registry.registry:5000/team/app-{i}:v1"))
        .collect();
    (0..count)
        .map(|i| json!({"name": format!("build-{i}"), "image": KANIKO, "args": args}))
        .collect()
}

const MAPS_FIRST: &str =
    "--registry-map=docker-registry.registry.svc.cluster.local:5000=registry.k8s-lab.dev";
