//! Values the rules leave naming a rewrite source: each gets exactly one
//! line, and nothing else about the container changes.

use crate::objects::{admit, pod};
use registry_rewriter::config::Config;
use registry_rewriter::engine::LeftoverReason;
use rstest::rstest;
use serde_json::{json, Value};

fn pod_with(container: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [container]}
    })
}

#[rstest]
#[case::image("docker-registry.registry.svc.cluster.local:5000/app:1", true)]
#[case::upper_case("DOCKER-REGISTRY.registry.svc.cluster.local:5000/app", true)]
#[case::in_a_flag("--destination=docker-registry.registry:5000/app", true)]
#[case::in_a_script("crane copy a docker-registry.registry:5000/app", true)]
#[case::in_quotes("name=\"docker-registry.registry:5000/a\"", true)]
#[case::host_alone("docker-registry.registry:5000", true)]
#[case::leading_zero_port("docker-registry.registry:05000/app", true)]
#[case::longer_host_before("my-docker-registry.registry:5000/app", false)]
#[case::longer_host_after("docker-registry.registry.example:5000/app", false)]
#[case::other_port("docker-registry.registry:5001/app", false)]
#[case::longer_port("docker-registry.registry:50001/app", false)]
#[case::no_port("docker-registry.registry/app", false)]
#[case::target("registry.k8s-lab.dev/app", false)]
fn a_source_is_named_only_at_a_host_and_port_boundary(#[case] text: &str, #[case] named: bool) {
    let config = Config::default();
    assert_eq!(config.rules().named_source(text).is_some(), named, "{text}");
}

#[rstest]
#[case::not_a_builder(
    json!({"name": "tool", "image": "alpine", "command": ["crane"], "args": ["copy", "docker-registry.registry.svc:5000/a", "b"]}),
    "containers[tool].args[1]: names docker-registry.registry.svc:5000, left as it is (not a known builder's flag)",
    LeftoverReason::NotABuilder
)]
#[case::env_value(
    json!({"name": "tool", "image": "alpine", "env": [{"name": "PARAM_IMAGE", "value": "docker-registry.registry:5000/app:1"}]}),
    "containers[tool].env[0]: names docker-registry.registry:5000, left as it is (an env value)",
    LeftoverReason::EnvValue
)]
#[case::shell_script(
    json!({"name": "sh", "image": "alpine", "command": ["/bin/sh", "-c"], "args": ["docker pull docker-registry.registry.svc.cluster.local:5000/x"]}),
    "containers[sh].args[0]: names docker-registry.registry.svc.cluster.local:5000, left as it is (a shell script)",
    LeftoverReason::ShellScript
)]
#[case::build_arg(
    json!({"name": "k", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": ["--no-push", "--build-arg", "BASE=docker-registry.registry.svc:5000/base"]}),
    "containers[k].args[2]: names docker-registry.registry.svc:5000, left as it is (a build argument)",
    LeftoverReason::BuildArgument
)]
#[case::build_arg_in_one(
    json!({"name": "k", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": ["--no-push", "--build-arg=BASE=docker-registry.registry.svc:5000/base"]}),
    "containers[k].args[1]: names docker-registry.registry.svc:5000, left as it is (a build argument)",
    LeftoverReason::BuildArgument
)]
#[case::builder_label(
    json!({"name": "k", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": ["--no-push", "--label=from=docker-registry.registry:5000/base"]}),
    "containers[k].args[1]: names docker-registry.registry:5000, left as it is (not a flag the builder's profile rewrites)",
    LeftoverReason::BuilderArgument
)]
fn each_kind_of_leftover_gets_one_line_and_no_patch(
    #[case] container: Value,
    #[case] line: &str,
    #[case] reason: LeftoverReason,
) {
    let object = pod_with(container);
    let (admitted, mutation) = admit(&object, pod());
    let messages: Vec<String> = mutation.leftovers.iter().map(|l| l.message()).collect();
    assert_eq!(messages, [line]);
    assert_eq!(mutation.leftovers[0].reason, reason);
    assert!(mutation.warnings.is_empty(), "{:?}", mutation.warnings);
    assert!(mutation.is_empty(), "{:?}", mutation.patch);
    assert_eq!(admitted, object);
}

#[test]
fn what_a_rule_moved_is_not_a_leftover() {
    let object = pod_with(json!({
        "name": "k",
        "image": "docker-registry.registry.svc:5000/kaniko:1",
        "command": ["/kaniko/executor"],
        "args": ["--destination=docker-registry.registry.svc:5000/app", "--insecure"],
        "env": [{"name": "KANIKO_REGISTRY_MIRROR", "value": "docker-registry.registry:5000"}]
    }));
    let (_, mutation) = admit(&object, pod());
    assert!(!mutation.is_empty());
    assert!(mutation.leftovers.is_empty(), "{:?}", mutation.leftovers);
}

#[test]
fn a_value_that_names_only_the_target_is_not_a_leftover() {
    let object =
        pod_with(json!({"name": "t", "image": "alpine", "args": ["registry.k8s-lab.dev/app"]}));
    let (_, mutation) = admit(&object, pod());
    assert!(mutation.leftovers.is_empty());
}
