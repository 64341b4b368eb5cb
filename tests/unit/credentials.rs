//! The pull secret for builds we move, case by case: where each builder
//! gets it, when a container's own credential leaves it alone, and names
//! that never collide. Every case applies the patch to the original object
//! and re-runs the engine on the result (no further operation).

use crate::objects;

use objects::{admit, admit_with, pod};
use registry_rewriter::config::Config;
use registry_rewriter::engine::ChangeKind;
use rstest::rstest;
use serde_json::{json, Value};

const KANIKO: &str = "gcr.io/kaniko-project/executor:v1.23.2";
const BUILDKIT: &str = "moby/buildkit:v0.23.0";
const BUILDAH: &str = "quay.io/buildah/stable:v1.40";
const MOUNT: &str = "/var/run/secrets/registry-rewriter";

fn build_pod(container: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "build"},
           "spec": {"containers": [container], "restartPolicy": "Never"}})
}

fn kaniko(args: &[&str]) -> Value {
    json!({"name": "build", "image": KANIKO, "args": args})
}

fn buildkit(args: &[&str]) -> Value {
    json!({"name": "build", "image": BUILDKIT, "command": ["buildctl-daemonless.sh"], "args": args})
}

fn buildah(args: &[&str]) -> Value {
    json!({"name": "build", "image": BUILDAH, "command": ["buildah"], "args": args})
}

const KANIKO_PUSH: &[&str] = &[
    "--destination=docker-registry.registry.svc:5000/team/app:v1",
    "--skip-tls-verify",
];
const BUILDKIT_PUSH: &[&str] = &[
    "build",
    "--output",
    "type=image,name=docker-registry.registry:5000/team/app:v1,push=true,registry.insecure=true",
];
const BUILDAH_PUSH: &[&str] = &[
    "push",
    "--tls-verify=false",
    "app",
    "docker://docker-registry.registry:5000/team/app:v1",
];

/// The Secret volume: optional, its item mapped to `config.json`.
fn credential_volume(name: &str) -> Value {
    json!({"name": name, "secret": {
        "secretName": "registry-credentials", "optional": true,
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
}

#[rstest]
#[case::kaniko(kaniko(KANIKO_PUSH), "/kaniko/.docker", None)]
#[case::buildkit(
    buildkit(BUILDKIT_PUSH),
    MOUNT,
    Some(("DOCKER_CONFIG", MOUNT.to_owned()))
)]
#[case::buildah(
    buildah(BUILDAH_PUSH),
    MOUNT,
    Some(("REGISTRY_AUTH_FILE", format!("{MOUNT}/config.json")))
)]
#[case::already_on_the_https_registry(
    kaniko(&["--destination=registry.k8s-lab.dev/team/app:v1"]),
    "/kaniko/.docker",
    None
)]
#[case::tekton_step(
    json!({"name": "build", "image": KANIKO, "command": ["/tekton/bin/entrypoint"],
           "args": ["-post_file", "/tekton/run/0/out", "-entrypoint", "/kaniko/executor", "--",
                    "--destination=docker-registry.registry:5000/team/app:v1"]}),
    "/kaniko/.docker",
    None
)]
fn a_moved_build_gets_the_pull_secret_where_its_builder_reads_it(
    #[case] container: Value,
    #[case] mount_path: &str,
    #[case] env: Option<(&str, String)>,
) {
    let (admitted, mutation) = admit(&build_pod(container), pod());
    let spec = &admitted["spec"];
    assert_eq!(
        spec["volumes"],
        json!([credential_volume("registry-rewriter-credentials")])
    );
    let built = &spec["containers"][0];
    assert_eq!(
        built["volumeMounts"],
        json!([{"name": "registry-rewriter-credentials", "mountPath": mount_path, "readOnly": true}])
    );
    match env {
        Some((name, value)) => assert_eq!(built["env"], json!([{"name": name, "value": value}])),
        None => assert!(built.get("env").is_none(), "{built}"),
    }
    let lines: Vec<&str> = mutation
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::BuildCredential)
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(lines.len(), 1, "{:?}", mutation.changes);
    assert!(
        lines[0].contains(&format!("added registry-credentials at {mount_path}")),
        "{}",
        lines[0]
    );
}

/// The signals of a container's own credential, as each builder's
/// documentation and source read it. Each leaves the container's volumes,
/// mounts and env exactly as they were, with one line.
#[rstest]
#[case::docker_config(
    json!({"name": "build", "image": BUILDKIT, "command": ["buildctl"], "args": BUILDKIT_PUSH,
           "env": [{"name": "DOCKER_CONFIG", "value": "/home/user/creds"}]}),
    "env DOCKER_CONFIG"
)]
#[case::registry_auth_file(
    json!({"name": "build", "image": BUILDAH, "command": ["buildah"], "args": BUILDAH_PUSH,
           "env": [{"name": "REGISTRY_AUTH_FILE", "value": "/auth/auth.json"}]}),
    "env REGISTRY_AUTH_FILE"
)]
#[case::docker_auth_config(
    json!({"name": "build", "image": "ghcr.io/osscontainertools/kaniko:v1.27.0", "args": KANIKO_PUSH,
           "env": [{"name": "DOCKER_AUTH_CONFIG", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}}]}),
    "env DOCKER_AUTH_CONFIG"
)]
#[case::kaniko_fork_env_credential(
    json!({"name": "build", "image": KANIKO, "args": KANIKO_PUSH,
           "env": [{"name": "KANIKO_REGISTRY_K8S_LAB_DEV_USER", "value": "ci"}]}),
    "env KANIKO_REGISTRY_K8S_LAB_DEV_USER"
)]
#[case::kaniko_docker_dir_mounted(
    json!({"name": "build", "image": KANIKO, "args": KANIKO_PUSH,
           "volumeMounts": [{"name": "docker-config", "mountPath": "/kaniko/.docker/"}]}),
    "a volume at /kaniko/.docker/"
)]
#[case::kaniko_config_file_mounted(
    json!({"name": "build", "image": KANIKO, "args": KANIKO_PUSH,
           "volumeMounts": [{"name": "docker-config", "mountPath": "/kaniko/.docker/config.json", "subPath": "config.json"}]}),
    "a volume at /kaniko/.docker/config.json"
)]
#[case::buildkit_home_docker(
    json!({"name": "build", "image": BUILDKIT, "command": ["buildctl"], "args": BUILDKIT_PUSH,
           "volumeMounts": [{"name": "docker-config", "mountPath": "/home/user/.docker"}]}),
    "a volume at /home/user/.docker"
)]
#[case::buildah_run_containers(
    json!({"name": "build", "image": BUILDAH, "command": ["buildah"], "args": BUILDAH_PUSH,
           "volumeMounts": [{"name": "auth", "mountPath": "/run/containers/0"}]}),
    "a volume at /run/containers/0"
)]
#[case::buildah_authfile(
    buildah(&["push", "--authfile", "/auth/auth.json", "app", "docker://docker-registry.registry:5000/team/app:v1"]),
    "--authfile"
)]
#[case::buildah_creds(
    buildah(&["push", "--creds=ci:secret", "app", "docker://docker-registry.registry:5000/team/app:v1"]),
    "--creds"
)]
#[case::tekton_home(
    json!({"name": "build", "image": KANIKO, "command": ["/tekton/bin/entrypoint"],
           "args": ["-entrypoint", "/kaniko/executor", "--", "--destination=docker-registry.registry:5000/team/app:v1"],
           "env": [{"name": "DOCKER_CONFIG", "value": "/tekton/home/.docker"}]}),
    "env DOCKER_CONFIG"
)]
fn a_container_with_its_own_credential_is_left_as_it_is(
    #[case] container: Value,
    #[case] signal: &str,
) {
    let original = build_pod(container.clone());
    let (admitted, mutation) = admit(&original, pod());
    let built = &admitted["spec"]["containers"][0];
    for field in ["env", "volumeMounts"] {
        assert_eq!(built.get(field), container.get(field), "{field}");
    }
    assert!(admitted["spec"].get("volumes").is_none());
    assert!(mutation
        .changes
        .iter()
        .all(|c| c.kind != ChangeKind::BuildCredential));
    let lines: Vec<&String> = mutation
        .warnings
        .iter()
        .filter(|w| w.contains("registry credential"))
        .collect();
    assert_eq!(lines.len(), 1, "{:?}", mutation.warnings);
    assert!(
        lines[0].contains(&format!("brings its own registry credential ({signal})"))
            && lines[0].ends_with("it must hold registry.k8s-lab.dev"),
        "{}",
        lines[0]
    );
}

#[rstest]
#[case::kaniko_dir_flag(kaniko(&["--kaniko-dir=/workspace/kaniko", "--destination=docker-registry.registry:5000/a:1"]))]
#[case::kaniko_dir_env(json!({"name": "build", "image": KANIKO, "args": KANIKO_PUSH,
                               "env": [{"name": "KANIKO_DIR", "value": "/workspace/kaniko"}]}))]
#[case::env_from_hides_the_variable(json!({"name": "build", "image": BUILDAH, "command": ["buildah"],
                                           "args": BUILDAH_PUSH, "envFrom": [{"secretRef": {"name": "env"}}]}))]
#[case::something_else_at_the_mount(json!({"name": "build", "image": BUILDAH, "command": ["buildah"],
                                           "args": BUILDAH_PUSH,
                                           "volumeMounts": [{"name": "x", "mountPath": MOUNT}]}))]
fn where_a_mount_is_unsafe_the_container_is_left_with_a_line(#[case] container: Value) {
    let (admitted, mutation) = admit(&build_pod(container.clone()), pod());
    let built = &admitted["spec"]["containers"][0];
    assert_eq!(built.get("volumeMounts"), container.get("volumeMounts"));
    assert_eq!(built.get("env"), container.get("env"));
    assert!(admitted["spec"].get("volumes").is_none());
    let lines = mutation
        .warnings
        .iter()
        .filter(|w| w.contains("no registry credential added"))
        .count();
    assert_eq!(lines, 1, "{:?}", mutation.warnings);
}

#[test]
fn a_build_that_reaches_no_rewrite_target_gets_nothing() {
    let container = kaniko(&["--destination=quay.io/team/app:v1"]);
    let (admitted, _) = admit(&build_pod(container), pod());
    assert!(admitted["spec"].get("volumes").is_none());
    assert!(admitted["spec"]["containers"][0]
        .get("volumeMounts")
        .is_none());
}

/// The Pod's own volumes, mounts and env stay, in order; ours is appended
/// under a name nobody uses.
#[test]
fn names_never_collide_and_lists_are_appended_to() {
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}, "spec": {
    "volumes": [{"name": "registry-rewriter-credentials", "emptyDir": {}}, {"name": "workspace", "emptyDir": {}}],
    "containers": [
        {"name": "kaniko", "image": KANIKO, "args": KANIKO_PUSH,
         "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
         "env": [{"name": "HTTP_PROXY", "value": "http://proxy:3128"}]},
        {"name": "buildah", "image": BUILDAH, "command": ["buildah"], "args": BUILDAH_PUSH,
         "env": [{"name": "STORAGE_DRIVER", "value": "vfs"}]}
    ]}});
    let (admitted, _) = admit(&original, pod());
    let spec = &admitted["spec"];
    assert_eq!(
        spec["volumes"],
        json!([{"name": "registry-rewriter-credentials", "emptyDir": {}}, {"name": "workspace", "emptyDir": {}},
               credential_volume("registry-rewriter-credentials-1")])
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": "workspace", "mountPath": "/workspace"},
               {"name": "registry-rewriter-credentials-1", "mountPath": "/kaniko/.docker", "readOnly": true}])
    );
    assert_eq!(
        spec["containers"][0]["env"],
        json!([{"name": "HTTP_PROXY", "value": "http://proxy:3128"}])
    );
    assert_eq!(
        spec["containers"][1]["env"],
        json!([{"name": "STORAGE_DRIVER", "value": "vfs"},
               {"name": "REGISTRY_AUTH_FILE", "value": format!("{MOUNT}/config.json")}])
    );
    assert_eq!(
        spec["containers"][1]["volumeMounts"][0]["name"],
        "registry-rewriter-credentials-1"
    );
}

#[test]
fn the_secret_is_the_configurations_pull_secret() {
    let config = Config::from_yaml("imagePullSecrets: [push-pull]").expect("valid");
    let (admitted, _) = admit_with(&build_pod(kaniko(KANIKO_PUSH)), pod(), &config);
    assert_eq!(
        admitted["spec"]["volumes"][0]["secret"]["secretName"],
        "push-pull"
    );

    let none = Config::from_yaml("imagePullSecrets: []").expect("valid");
    let (admitted, _) = admit_with(&build_pod(kaniko(KANIKO_PUSH)), pod(), &none);
    assert!(admitted["spec"].get("volumes").is_none());
}
