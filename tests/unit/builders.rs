//! Image builders other than bare Kaniko, and builders run by CI wrappers,
//! case by case. Every case applies the patch to the original object,
//! checks the builder's arguments after admission, and re-runs the engine
//! on the result to prove it yields no further operation.

use crate::objects;

use objects::{admit, job, pod, run};
use registry_rewriter::config::Config;
use registry_rewriter::engine::{ChangeKind, Scope};
use rstest::rstest;
use serde_json::{json, Value};

const MAPS: [&str; 3] = [
    "--registry-map=docker-registry.registry.svc.cluster.local:5000=registry.k8s-lab.dev",
    "--registry-map=docker-registry.registry.svc:5000=registry.k8s-lab.dev",
    "--registry-map=docker-registry.registry:5000=registry.k8s-lab.dev",
];

fn pod_running(image: &str, command: Value, args: Value) -> Value {
    let mut container = json!({"name": "build", "image": image});
    if !command.is_null() {
        container["command"] = command;
    }
    if !args.is_null() {
        container["args"] = args;
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "build"},
        "spec": {"containers": [container]}
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The container's command and args after admission, as one list.
fn admitted_arguments(object: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (admitted, mutation) = admit(object, pod());
    let container = &admitted["spec"]["containers"][0];
    let lines = mutation
        .changes
        .iter()
        .map(|c| c.message.clone())
        .chain(mutation.warnings.iter().map(|w| format!("warning: {w}")))
        .collect();
    (
        strings(&container["command"]),
        strings(&container["args"]),
        lines,
    )
}

// --- BuildKit ----------------------------------------------------------------

const BUILDKIT: &str = "moby/buildkit:v0.18.2-rootless";

#[rstest]
#[case::output_with_insecure(
    json!(["build", "--frontend", "dockerfile.v0", "--output", "type=image,name=docker-registry.registry:5000/team/app:v1,push=true,registry.insecure=true"]),
    json!(["build", "--frontend", "dockerfile.v0", "--output", "type=image,name=registry.k8s-lab.dev/team/app:v1,push=true"])
)]
#[case::output_inline(
    json!(["build", "--output=type=image,name=docker-registry.registry.svc:5000/a:1,push=true"]),
    json!(["build", "--output=type=image,name=registry.k8s-lab.dev/a:1,push=true"])
)]
#[case::shorthand(
    json!(["build", "-o", "type=image,registry.insecure=true,name=docker-registry.registry:5000/a:1,push=true"]),
    json!(["build", "-o", "type=image,name=registry.k8s-lab.dev/a:1,push=true"])
)]
#[case::quoted_names_all_internal(
    json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1,docker-registry.registry:5000/a:latest\",push=true,registry.insecure=true"]),
    json!(["build", "--output", "type=image,\"name=registry.k8s-lab.dev/a:1,registry.k8s-lab.dev/a:latest\",push=true"])
)]
#[case::internal_and_external_names_mixed(
    json!(["build", "--output", "type=image,\"name=docker-registry.registry:5000/a:1,docker.io/me/a:1\",push=true,registry.insecure=true"]),
    json!(["build", "--output", "type=image,\"name=registry.k8s-lab.dev/a:1,docker.io/me/a:1\",push=true,registry.insecure=true"])
)]
#[case::other_fields_keep_their_quotes(
    json!(["build", "--output", "\"type=image\",name=docker-registry.registry:5000/a:1,\"annotation.x=a,b\",push=true"]),
    json!(["build", "--output", "\"type=image\",name=registry.k8s-lab.dev/a:1,\"annotation.x=a,b\",push=true"])
)]
#[case::export_and_import_cache(
    json!(["build", "--export-cache", "type=registry,ref=docker-registry.registry:5000/team/cache,mode=max,registry.insecure=true", "--import-cache=type=registry,ref=docker-registry.registry:5000/team/cache,registry.insecure=true"]),
    json!(["build", "--export-cache", "type=registry,ref=registry.k8s-lab.dev/team/cache,mode=max", "--import-cache=type=registry,ref=registry.k8s-lab.dev/team/cache"])
)]
#[case::already_external_insecure_goes(
    json!(["build", "--output", "type=image,name=registry.k8s-lab.dev/a:1,push=true,registry.insecure=true"]),
    json!(["build", "--output", "type=image,name=registry.k8s-lab.dev/a:1,push=true"])
)]
#[case::global_flags_before_the_subcommand(
    json!(["--addr", "tcp://buildkitd:1234", "build", "--opt", "build-arg:X=--output", "--output", "type=image,name=docker-registry.registry:5000/a:1"]),
    json!(["--addr", "tcp://buildkitd:1234", "build", "--opt", "build-arg:X=--output", "--output", "type=image,name=registry.k8s-lab.dev/a:1"])
)]
fn buildkit_outputs(#[case] args: Value, #[case] expected: Value) {
    let object = pod_running(BUILDKIT, json!(["buildctl-daemonless.sh"]), args);
    let (command, args, _) = admitted_arguments(&object);
    assert_eq!(command, ["buildctl-daemonless.sh"]);
    assert_eq!(args, strings(&expected));
}

#[test]
fn buildkit_lines_name_the_builder() {
    let object = pod_running(
        BUILDKIT,
        json!(["buildctl"]),
        json!([
            "build",
            "--output",
            "type=image,name=docker-registry.registry:5000/a:1,registry.insecure=true"
        ]),
    );
    let (_, _, lines) = admitted_arguments(&object);
    assert_eq!(
        lines,
        [
            "containers[build].args (buildkit): --output name=docker-registry.registry:5000/a:1 -> name=registry.k8s-lab.dev/a:1",
            "containers[build].args (buildkit): --output: removed registry.insecure=true (the registry is now reached over HTTPS)",
            "containers[build] (buildkit): added registry-credentials at /var/run/secrets/registry-rewriter and DOCKER_CONFIG=/var/run/secrets/registry-rewriter (its builder reads the registry credential there)",
        ]
    );
}

#[rstest]
#[case::bare_quote("type=image,na\"me=docker-registry.registry:5000/a:1")]
#[case::unclosed_quote("type=image,\"name=docker-registry.registry:5000/a:1")]
fn buildkit_csv_it_cannot_read_is_left_alone_with_a_warning(#[case] output: &str) {
    let object = pod_running(
        BUILDKIT,
        json!(["buildctl"]),
        json!(["build", "--output", output]),
    );
    let mutation = run(&object, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
    assert_eq!(mutation.warnings.len(), 1, "{:?}", mutation.warnings);
    assert!(mutation.warnings[0].contains("not the CSV BuildKit reads"));
}

#[rstest]
#[case::other_subcommand(json!(["buildctl"]), json!(["du", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
#[case::look_alike_executable(json!(["/usr/bin/buildctl2"]), json!(["build", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
#[case::value_that_looks_like_the_subcommand(json!(["buildctl"]), json!(["--addr", "build", "prune", "--output", "type=image,name=docker-registry.registry:5000/a:1"]))]
fn buildkit_outside_a_build_is_untouched(#[case] command: Value, #[case] args: Value) {
    let object = pod_running("docker.io/library/alpine:3", command, args);
    assert!(run(&object, pod(), Scope::Create, Config::default().rules()).is_empty());
}

// --- Buildah -------------------------------------------------------------------

const BUILDAH: &str = "quay.io/buildah/stable:v1.38";

#[rstest]
#[case::push_with_transport(
    json!(["push", "--tls-verify=false", "app", "docker://docker-registry.registry:5000/team/app:v1"]),
    json!(["push", "app", "docker://registry.k8s-lab.dev/team/app:v1"])
)]
#[case::push_one_image(
    json!(["push", "--tls-verify=false", "docker-registry.registry.svc:5000/team/app:v1"]),
    json!(["push", "registry.k8s-lab.dev/team/app:v1"])
)]
#[case::push_source_and_destination(
    json!(["push", "--tls-verify=false", "docker-registry.registry:5000/app:v1", "docker://docker-registry.registry:5000/app:v1"]),
    json!(["push", "registry.k8s-lab.dev/app:v1", "docker://registry.k8s-lab.dev/app:v1"])
)]
#[case::pull(
    json!(["pull", "--tls-verify=false", "docker-registry.registry:5000/base:1"]),
    json!(["pull", "registry.k8s-lab.dev/base:1"])
)]
#[case::from_with_global_flags(
    json!(["--storage-driver", "vfs", "from", "--name", "work", "--tls-verify=false", "docker-registry.registry:5000/base:1"]),
    json!(["--storage-driver", "vfs", "from", "--name", "work", "registry.k8s-lab.dev/base:1"])
)]
#[case::push_elsewhere_keeps_the_flag(
    json!(["push", "--tls-verify=false", "app", "docker://other.local:5000/app:v1"]),
    json!(["push", "--tls-verify=false", "app", "docker://other.local:5000/app:v1"])
)]
#[case::every_tls_verify_false_goes(
    json!(["push", "--tls-verify=false", "--tls-verify=0", "docker-registry.registry:5000/app:v1"]),
    json!(["push", "registry.k8s-lab.dev/app:v1"])
)]
#[case::other_transport_is_no_registry(
    json!(["push", "app", "oci:/tmp/app"]),
    json!(["push", "app", "oci:/tmp/app"])
)]
#[case::creds_value_that_looks_like_a_flag(
    json!(["push", "--creds", "--tls-verify=false", "app", "docker://docker-registry.registry:5000/app:v1"]),
    json!(["push", "--creds", "--tls-verify=false", "app", "docker://registry.k8s-lab.dev/app:v1"])
)]
fn buildah_images(#[case] args: Value, #[case] expected: Value) {
    let object = pod_running(BUILDAH, json!(["buildah"]), args);
    let (_, args, _) = admitted_arguments(&object);
    assert_eq!(args, strings(&expected));
}

#[test]
fn buildah_bud_keeps_tls_verify_with_a_warning() {
    let object = pod_running(
        BUILDAH,
        json!(["buildah"]),
        json!([
            "bud",
            "--tls-verify=false",
            "-t",
            "docker-registry.registry:5000/team/app:v1",
            "--layers",
            "."
        ]),
    );
    let (_, args, lines) = admitted_arguments(&object);
    assert_eq!(
        args,
        [
            "bud",
            "--tls-verify=false",
            "-t",
            "registry.k8s-lab.dev/team/app:v1",
            "--layers",
            "."
        ]
    );
    assert_eq!(
        lines,
        [
            "containers[build].args (buildah): -t docker-registry.registry:5000/team/app:v1 -> registry.k8s-lab.dev/team/app:v1",
            "containers[build] (buildah): added registry-credentials at /var/run/secrets/registry-rewriter and REGISTRY_AUTH_FILE=/var/run/secrets/registry-rewriter/config.json (its builder reads the registry credential there)",
            "warning: containers[build].args (buildah): kept --tls-verify=false: the command also reaches images that are not on the HTTPS registry (such as the base images of a Containerfile, which the webhook cannot see)",
        ]
    );
}

#[test]
fn buildah_in_a_shell_is_left_alone_with_a_warning() {
    let object = pod_running(
        BUILDAH,
        json!(["/bin/sh", "-c"]),
        json!(["buildah push --tls-verify=false app docker://docker-registry.registry:5000/app"]),
    );
    let mutation = run(&object, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
    assert_eq!(mutation.warnings.len(), 1);
    assert!(mutation.warnings[0].contains("buildah image runs \"/bin/sh\""));
}

#[rstest]
#[case::look_alike_executable(json!(["/usr/bin/mybuildah"]))]
#[case::look_alike_image_without_command(Value::Null)]
fn buildah_look_alikes_are_untouched(#[case] command: Value) {
    let object = pod_running(
        "quay.io/buildah/stable-fork:1",
        command,
        json!([
            "push",
            "--tls-verify=false",
            "app",
            "docker://docker-registry.registry:5000/app"
        ]),
    );
    assert!(run(&object, pod(), Scope::Create, Config::default().rules()).is_empty());
}

// --- CI wrappers -------------------------------------------------------------------

/// A Tekton step as Tekton's controller writes it into the Pod.
fn tekton_step(image: &str, program: &str, args: &[&str]) -> Value {
    let mut wrapper_args = vec![
        "-wait_file",
        "/tekton/downward/ready",
        "-wait_file_content",
        "-post_file",
        "/tekton/run/0/out",
        "-termination_path",
        "/tekton/termination",
        "-step_metadata_dir",
        "/tekton/run/0/status",
        "-entrypoint",
        program,
        "--",
    ];
    wrapper_args.extend(args);
    pod_running(
        image,
        json!(["/tekton/bin/entrypoint"]),
        json!(wrapper_args),
    )
}

#[test]
fn tekton_step_running_kaniko() {
    let object = tekton_step(
        "gcr.io/kaniko-project/executor:v1.23.2",
        "/kaniko/executor",
        &[
            "--dockerfile=Dockerfile",
            "--destination=docker-registry.registry:5000/team/app:v1",
            "--skip-tls-verify",
        ],
    );
    let (command, args, lines) = admitted_arguments(&object);
    assert_eq!(
        command,
        ["/tekton/bin/entrypoint"],
        "the wrapper is not touched"
    );
    let separator = args
        .iter()
        .position(|a| a == "--")
        .expect("the wrapper's --");
    assert_eq!(
        args[separator - 2..separator],
        ["-entrypoint", "/kaniko/executor"]
    );
    let mut expected: Vec<String> = MAPS.iter().map(|m| (*m).to_owned()).collect();
    expected.extend([
        "--dockerfile=Dockerfile".into(),
        "--destination=registry.k8s-lab.dev/team/app:v1".into(),
    ]);
    assert_eq!(
        args[separator + 1..],
        expected[..],
        "maps go first after --"
    );
    assert!(lines.iter().any(|l| l == "containers[build].args: --destination docker-registry.registry:5000/team/app:v1 -> registry.k8s-lab.dev/team/app:v1"));
}

/// A step with no `command`: Tekton looks the image's ENTRYPOINT up, pins
/// the image by digest, and gives the entrypoint binary no `-entrypoint`
/// (tektoncd/pipeline pkg/pod/entrypoint.go, entrypoint_lookup.go). The
/// catalog's kaniko task 0.2 to 0.7 has this shape: `args` only.
#[test]
fn tekton_step_without_command_runs_its_images_builder() {
    let mut object = pod_running(
        "gcr.io/kaniko-project/executor@sha256:8d2bdddf000000000000000000000000000000000000000000000000000000f1",
        json!(["/tekton/bin/entrypoint"]),
        json!([
            "-wait_file", "/tekton/downward/ready", "-wait_file_content",
            "-post_file", "/tekton/run/0/out",
            "-termination_path", "/tekton/termination",
            "-step_metadata_dir", "/tekton/run/0/status",
            "--",
            "--dockerfile=./Dockerfile",
            "--context=/workspace/source",
            "--destination=docker-registry.registry.svc.cluster.local:5000/team/app:v1",
            "--skip-tls-verify",
        ]),
    );
    object["spec"]["containers"][0]["env"] = json!([{"name": "TEKTON_PLATFORM_COMMANDS", "value": "{\"linux/amd64\":[\"/kaniko/executor\"]}"}]);
    let (_, args, lines) = admitted_arguments(&object);
    let separator = args
        .iter()
        .position(|a| a == "--")
        .expect("the wrapper's --");
    assert_eq!(args[..separator].len(), 9, "the wrapper's own flags stay");
    let mut expected: Vec<String> = MAPS.iter().map(|m| (*m).to_owned()).collect();
    expected.extend([
        "--dockerfile=./Dockerfile".into(),
        "--context=/workspace/source".into(),
        "--destination=registry.k8s-lab.dev/team/app:v1".into(),
    ]);
    assert_eq!(args[separator + 1..], expected[..]);
    assert!(lines
        .iter()
        .any(|l| l.contains("removed --skip-tls-verify")));
}

/// The same shape with an image that is no builder is left alone.
#[test]
fn tekton_step_without_command_and_no_builder_image_is_left_alone() {
    let object = pod_running(
        "docker.io/library/alpine@sha256:8d2bdddf000000000000000000000000000000000000000000000000000000f1",
        json!(["/tekton/bin/entrypoint"]),
        json!(["-post_file", "/tekton/run/0/out", "--", "--destination=docker-registry.registry:5000/a:1"]),
    );
    let (_, args, lines) = admitted_arguments(&object);
    assert_eq!(args[3], "--destination=docker-registry.registry:5000/a:1");
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn tekton_wrapper_arguments_are_never_touched() {
    // The wrapper's own flags hold values that look like ours.
    let object = pod_running(
        "gcr.io/kaniko-project/executor:v1.23.2",
        json!(["/tekton/bin/entrypoint"]),
        json!([
            "-post_file",
            "--destination=docker-registry.registry:5000/x",
            "-entrypoint",
            "/kaniko/executor",
            "--",
            "--skip-tls-verify"
        ]),
    );
    let (_, args, _) = admitted_arguments(&object);
    assert_eq!(
        args[..5],
        [
            "-post_file",
            "--destination=docker-registry.registry:5000/x",
            "-entrypoint",
            "/kaniko/executor",
            "--"
        ]
    );
    assert!(!args.contains(&"--skip-tls-verify".to_owned()));
}

/// A script's flags are hidden: one warning where the step names a rule
/// registry (its script may push there), none where it names none.
#[rstest]
#[case::names_the_internal_registry("docker-registry.registry:5000/team/app:1", 1)]
#[case::names_none("quay.io/team/app:1", 0)]
fn tekton_script_step_in_a_kaniko_image_is_left_alone(
    #[case] destination: &str,
    #[case] warnings: usize,
) {
    let mut object = tekton_step(
        "gcr.io/kaniko-project/executor:debug",
        "/tekton/scripts/script-0-x2kfp",
        &[],
    );
    object["spec"]["containers"][0]["env"] = json!([{"name": "PARAM_IMAGE", "value": destination}]);
    let mutation = run(&object, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty());
    assert_eq!(mutation.warnings.len(), warnings);
    if warnings > 0 {
        assert!(mutation.warnings[0].contains("/tekton/scripts/script-0-x2kfp"));
    }
}

/// A build that names no rule registry is not ours: its TLS flags stay.
#[test]
fn a_build_that_names_no_rule_registry_is_left_as_it_is() {
    let object = pod_running(
        "gcr.io/kaniko-project/executor:v1.23.2",
        Value::Null,
        json!([
            "--destination=registry.example:5443/a:1",
            "--skip-tls-verify"
        ]),
    );
    let mutation = run(&object, pod(), Scope::Create, Config::default().rules());
    assert!(mutation.is_empty(), "{:?}", mutation.patch);
}

/// An Argo Workflows step as its controller writes it (the emissary executor).
fn argo_step(image: &str, command: &[&str], args: Value) -> Value {
    let mut wrapped = vec![
        "/var/run/argo/argoexec",
        "emissary",
        "--loglevel",
        "info",
        "--log-format",
        "text",
        "--",
    ];
    wrapped.extend(command);
    pod_running(image, json!(wrapped), args)
}

#[test]
fn argo_step_running_buildctl_daemonless() {
    let object = argo_step(
        BUILDKIT,
        &["buildctl-daemonless.sh", "build"],
        json!(["--frontend", "dockerfile.v0", "--output", "type=image,name=docker-registry.registry:5000/team/app:v1,push=true,registry.insecure=true"]),
    );
    let (command, args, _) = admitted_arguments(&object);
    assert_eq!(
        command,
        [
            "/var/run/argo/argoexec",
            "emissary",
            "--loglevel",
            "info",
            "--log-format",
            "text",
            "--",
            "buildctl-daemonless.sh",
            "build"
        ]
    );
    assert_eq!(
        args,
        [
            "--frontend",
            "dockerfile.v0",
            "--output",
            "type=image,name=registry.k8s-lab.dev/team/app:v1,push=true"
        ]
    );
}

#[test]
fn argo_step_running_kaniko_gets_its_maps_after_the_program() {
    let object = argo_step(
        "gcr.io/kaniko-project/executor:v1.23.2",
        &["/kaniko/executor"],
        json!(["--destination=docker-registry.registry:5000/a:1"]),
    );
    let (command, args, _) = admitted_arguments(&object);
    let mut expected: Vec<String> = [
        "/var/run/argo/argoexec",
        "emissary",
        "--loglevel",
        "info",
        "--log-format",
        "text",
        "--",
        "/kaniko/executor",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    expected.extend(MAPS.iter().map(|m| (*m).to_owned()));
    assert_eq!(command, expected);
    assert_eq!(args, ["--destination=registry.k8s-lab.dev/a:1"]);
}

#[rstest]
#[case::argoexec_other_subcommand(json!(["argoexec", "wait", "--", "buildctl", "build"]))]
#[case::argo_without_separator(json!(["argoexec", "emissary", "buildctl", "build"]))]
#[case::tekton_without_entrypoint(json!(["/tekton/bin/entrypoint", "-post_file", "x", "--", "build"]))]
fn wrappers_of_another_shape_are_untouched(#[case] command: Value) {
    let object = pod_running(
        "docker.io/library/alpine:3",
        command,
        json!([
            "--output",
            "type=image,name=docker-registry.registry:5000/a:1,registry.insecure=true"
        ]),
    );
    assert!(run(&object, pod(), Scope::Create, Config::default().rules()).is_empty());
}

// --- Configuration and explanations ----------------------------------------------------

#[test]
fn a_job_template_is_rewritten_too() {
    let object = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "b"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "build", "image": BUILDAH, "command": ["buildah"],
            "args": ["push", "--tls-verify=false", "app", "docker://docker-registry.registry:5000/a:1"]
        }]}}}
    });
    let (admitted, mutation) = admit(&object, job());
    assert_eq!(
        strings(&admitted["spec"]["template"]["spec"]["containers"][0]["args"]),
        ["push", "app", "docker://registry.k8s-lab.dev/a:1"]
    );
    let kinds: Vec<ChangeKind> = mutation.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::BuildArg,
            ChangeKind::BuildFlagRemoved,
            ChangeKind::BuildCredential
        ]
    );
}

#[test]
fn a_builder_profile_from_the_config_file() {
    // A fifth builder is one profile: here, podman's `build` and `push`.
    let config = Config::from_yaml(
        r#"
builders:
  profiles:
  - name: podman
    executables: [podman]
    subcommands: [build, push]
    imageArguments: [push]
    imageFlags: [-t, --tag]
    valueFlags: [--creds, --authfile]
    tlsVerifyFlag: --tls-verify
"#,
    )
    .expect("valid");
    let object = pod_running(
        "quay.io/podman/stable:v5",
        json!(["podman"]),
        json!([
            "push",
            "--tls-verify=false",
            "docker-registry.registry:5000/a:1"
        ]),
    );
    let (admitted, _) = objects::admit_with(&object, pod(), &config);
    assert_eq!(
        strings(&admitted["spec"]["containers"][0]["args"]),
        ["push", "registry.k8s-lab.dev/a:1"]
    );
}

#[rstest]
#[case::unknown_role_key(
    "builders: {profiles: [{name: x, executables: [x], imageFlag: [-t]}]}",
    "builders.profiles[0]"
)]
#[case::bad_flag(
    "builders: {profiles: [{name: x, executables: [x], imageFlags: [tag]}]}",
    "builders.profiles[0].imageFlags[0]"
)]
#[case::unrecognisable("builders: {profiles: [{name: x}]}", "builders.profiles[0]")]
#[case::image_argument_not_a_subcommand(
    "builders: {profiles: [{name: x, executables: [x], subcommands: [a], imageArguments: [b]}]}",
    "builders.profiles[0].imageArguments[0]"
)]
#[case::duplicate_name(
    "builders: {profiles: [{name: x, executables: [x]}, {name: x, executables: [y]}]}",
    "builders.profiles[1].name"
)]
#[case::bad_name(
    "builders: {profiles: [{name: X Y, executables: [x]}]}",
    "builders.profiles[0].name"
)]
#[case::wrapper_flag(
    "builders: {wrappers: [{name: w, executables: [w], executableFlag: entrypoint}]}",
    "builders.wrappers[0].executableFlag[0]"
)]
#[case::kaniko_without_its_profile(
    "builders: {profiles: []}\nkaniko: {registryMap: false}",
    "kaniko"
)]
#[case::env_flag_without_role(
    "builders: {profiles: [{name: x, executables: [x], envFlags: {X_DEST: --dest}}]}",
    "builders.profiles[0].envFlags.X_DEST"
)]
#[case::bad_env_flag_name(
    "builders: {profiles: [{name: x, executables: [x], imageFlags: [--dest], envFlags: {'X DEST': --dest}}]}",
    "builders.profiles[0].envFlags.X DEST"
)]
fn builder_config_errors_name_the_key(#[case] yaml: &str, #[case] field: &str) {
    let error = Config::from_yaml(yaml).expect_err("refused");
    assert_eq!(error.field, field, "{error}");
}

#[test]
fn the_kaniko_key_still_sets_the_kaniko_profile() {
    let config =
        Config::from_yaml("kaniko: {images: [registry.example/tools/kaniko], registryMap: false}")
            .expect("valid");
    let object = pod_running(
        "registry.example/tools/kaniko:1",
        Value::Null,
        json!(["-d=docker-registry.registry:5000/a"]),
    );
    let (admitted, _) = objects::admit_with(&object, pod(), &config);
    assert_eq!(
        strings(&admitted["spec"]["containers"][0]["args"]),
        ["-d=registry.k8s-lab.dev/a"]
    );
}

// --- Kaniko's maintained forks -------------------------------------------------

const FORK: &str = "ghcr.io/osscontainertools/kaniko:v1.27.0";

fn fork_pod(env: Value, args: Value) -> Value {
    let mut object = pod_running(FORK, Value::Null, args);
    object["spec"]["containers"][0]["env"] = env;
    object
}

/// The fork reads `KANIKO_REGISTRY_MIRROR` and `KANIKO_REGISTRY_MAP` as its
/// flags (cmd/executor/cmd/root.go, `ValidateFlags`): on the internal
/// registry, their values move as the flags' would.
#[rstest]
#[case::mirror(
    json!([{"name": "KANIKO_REGISTRY_MIRROR", "value": "docker-registry.registry.svc:5000/hub"}]),
    json!([{"name": "KANIKO_REGISTRY_MIRROR", "value": "registry.k8s-lab.dev/hub"}])
)]
#[case::map(
    json!([{"name": "KANIKO_REGISTRY_MAP", "value": "index.docker.io=docker-registry.registry:5000;quay.io=mirror.example"}]),
    json!([{"name": "KANIKO_REGISTRY_MAP", "value": "index.docker.io=registry.k8s-lab.dev;quay.io=mirror.example"}])
)]
#[case::others_untouched(
    json!([{"name": "A", "value": "docker-registry.registry:5000/a"}, {"name": "KANIKO_REGISTRY_MIRROR", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}, {"name": "KANIKO_REGISTRY_MIRROR", "value": "mirror.gcr.io"}]),
    json!([{"name": "A", "value": "docker-registry.registry:5000/a"}, {"name": "KANIKO_REGISTRY_MIRROR", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}, {"name": "KANIKO_REGISTRY_MIRROR", "value": "mirror.gcr.io"}])
)]
fn kaniko_settings_in_the_environment(#[case] env: Value, #[case] expected: Value) {
    let object = fork_pod(
        env,
        json!(["--destination=docker-registry.registry:5000/a:1"]),
    );
    let (admitted, mutation) = admit(&object, pod());
    let container = &admitted["spec"]["containers"][0];
    let ours = |name: &str| name.starts_with("DOCKER") || name.starts_with("REGISTRY_AUTH");
    let env: Vec<&Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter(|v| !ours(v["name"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(json!(env), expected);
    let moved = expected != object["spec"]["containers"][0]["env"];
    let lines: Vec<&str> = mutation
        .changes
        .iter()
        .map(|c| c.message.as_str())
        .filter(|m| m.contains(".env["))
        .collect();
    assert_eq!(lines.len(), usize::from(moved), "{lines:?}");
    assert_eq!(
        strings(&container["args"]).last().map(String::as_str),
        Some("--destination=registry.k8s-lab.dev/a:1")
    );
}

/// A registry the environment maps already gets no `--registry-map` of ours.
#[test]
fn a_registry_mapped_in_the_environment_is_not_mapped_again() {
    let env = json!([{"name": "KANIKO_REGISTRY_MAP", "value": "docker-registry.registry:5000=registry.k8s-lab.dev"}]);
    let object = fork_pod(env, json!(["-d=docker-registry.registry:5000/a:1"]));
    let (admitted, _) = admit(&object, pod());
    let args = strings(&admitted["spec"]["containers"][0]["args"]);
    assert_eq!(args, [MAPS[0], MAPS[1], "-d=registry.k8s-lab.dev/a:1"]);
}

/// The fork's `push` subcommand pushes a built image: its destination and
/// TLS flags are the executor's own (cmd/executor/cmd/push.go).
#[test]
fn kaniko_push_subcommand() {
    let object = pod_running(
        FORK,
        json!(["/kaniko/executor"]),
        json!([
            "push",
            "/workspace/image.tar",
            "--skip-tls-verify",
            "-d",
            "docker-registry.registry:5000/a:1"
        ]),
    );
    let (_, args, _) = admitted_arguments(&object);
    assert_eq!(
        args,
        [
            "push",
            "/workspace/image.tar",
            "-d",
            "registry.k8s-lab.dev/a:1"
        ]
    );
}

/// A profile of the file can name its own variables.
#[test]
fn env_flags_from_the_config_file() {
    let config = Config::from_yaml(
        "builders: {profiles: [{name: x, executables: [x], imageFlags: [--dest], envFlags: {X_DEST: --dest}}]}",
    )
    .expect("valid");
    let mut object = pod_running("tools/x:1", json!(["x"]), Value::Null);
    object["spec"]["containers"][0]["env"] =
        json!([{"name": "X_DEST", "value": "docker-registry.registry:5000/a:1"}]);
    let (admitted, _) = objects::admit_with(&object, pod(), &config);
    assert_eq!(
        admitted["spec"]["containers"][0]["env"][0]["value"],
        "registry.k8s-lab.dev/a:1"
    );
}
