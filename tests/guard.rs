//! The guard on a real API server: kube-lite runs the real
//! ValidatingAdmissionPolicy plugin after the mutating ones, as a cluster
//! does. With the webhook down, nothing on the internal registry passes in
//! silence (guard) or at all (guard-deny), and Pods that name no rule
//! registry pass either way. With a back end answering, the guard is
//! silent exactly where the engine has nothing left to do.

mod kube_lite;
mod objects;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kube_lite::{free_port, text, Cluster, Running};
use objects::kustomize::{kubectl, root};
use registry_rewriter::config::Config;
use registry_rewriter::engine::{Scope, Workload};
use rstest::rstest;
use serde_json::{json, Value};

const INTERNAL: &str =
    "docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1";
const REWRITTEN: &str = "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1";
const NAMESPACE: &str = "dynamic-apps";

fn cluster(binary: &Path, dir: &Path, webhook_port: u16) -> Cluster {
    let service = format!("registry-rewriter/registry-rewriter:443=127.0.0.1:{webhook_port}");
    Cluster::start(binary, dir, &["--webhook-service".to_owned(), service])
}

fn apply_overlay(cluster: &Cluster, overlay: &str) {
    let dir = root().join(overlay);
    cluster.ok(&["apply", "-k", dir.to_str().expect("UTF-8")], None);
}

/// `kubectl run --dry-run=server`: the image as admitted and kubectl's
/// stderr, or the refusal.
fn run_pod(cluster: &Cluster, image: &str) -> Result<(String, String), String> {
    let output = cluster.run(
        &[
            "-n",
            NAMESPACE,
            "run",
            "guarded",
            &format!("--image={image}"),
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        None,
    );
    match output.status.success() {
        true => Ok((text(&output.stdout), text(&output.stderr))),
        false => Err(text(&output.stderr)),
    }
}

/// Polls until `check` holds of the internal Pod's admission: the plugins
/// learn of new policies and configurations through their informers.
fn until(cluster: &Cluster, what: &str, check: impl Fn(&Result<(String, String), String>) -> bool) {
    let started = Instant::now();
    loop {
        let answer = run_pod(cluster, INTERNAL);
        if check(&answer) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `registry-rewriter certs` into `dir`, beside a copy of `manifests/`
/// that its kustomization names.
fn certs(dir: &Path) {
    let parent = dir.parent().expect("parent");
    objects::kustomize::copy_dir(&root().join("manifests"), &parent.join("manifests"));
    let made = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args([
            "certs",
            "--service",
            "registry-rewriter",
            "--namespace",
            "registry-rewriter",
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("certs");
    assert!(made.status.success(), "{}", text(&made.stderr));
    std::fs::copy(
        root().join("certs/kustomization.yaml"),
        dir.join("kustomization.yaml"),
    )
    .expect("copy");
}

fn serve(certs: &Path, webhook_port: u16) -> Running {
    kube_lite::serve(certs, webhook_port, free_port())
}

const GUARD_LINE: &str = "ValidatingAdmissionPolicy 'registry-rewriter-guard-images'";

/// The outage, for real: the webhook configuration installed, its server
/// stopped. The API server ignores the failed call (`failurePolicy:
/// Ignore`), and the guard sees the Pod as it would be stored.
#[rstest]
#[case::warn("manifests/overlays/guard")]
#[case::deny("manifests/overlays/guard-deny")]
fn with_the_webhook_down_nothing_internal_passes_in_silence(#[case] overlay: &str) {
    let (Some(kube_lite), Some(_)) = (kube_lite::binary(), kubectl()) else {
        return;
    };
    let deny = overlay.ends_with("deny");
    let work = tempfile::tempdir().expect("dir");
    let certs_dir = work.path().join("certs");
    certs(&certs_dir);
    let webhook_port = free_port();
    let cluster = cluster(&kube_lite, work.path(), webhook_port);
    apply_overlay(&cluster, certs_dir.to_str().expect("UTF-8"));
    apply_overlay(&cluster, overlay);
    cluster.ok(&["create", "namespace", NAMESPACE], None);

    // Down: admitted unrewritten with the guard's warning, or refused.
    until(&cluster, "the guard takes effect", |answer| {
        match (deny, answer) {
            (false, Ok((image, stderr))) => image == INTERNAL && stderr.contains(GUARD_LINE),
            (true, Err(stderr)) => stderr.contains(GUARD_LINE),
            _ => false,
        }
    });
    match run_pod(&cluster, INTERNAL) {
        Ok((_, stderr)) => {
            assert!(!deny);
            for words in [
                "containers[guarded].image",
                "did not rewrite it",
                "kubectl -n registry-rewriter get pods",
                "skip=true",
            ] {
                assert!(stderr.contains(words), "{words}: {stderr}");
            }
        }
        Err(stderr) => {
            assert!(deny);
            assert!(stderr.contains("denied"), "{stderr}");
            assert!(stderr.contains(INTERNAL), "{stderr}");
        }
    }
    // A Pod that names no rule registry is admitted, with nothing said.
    let (image, stderr) = run_pod(&cluster, "nginx:1.27").expect("admitted");
    assert_eq!(image, "nginx:1.27");
    assert!(!stderr.contains("registry-rewriter"), "{stderr}");

    // Up again: the same request is admitted rewritten, and the guard is quiet.
    let _webhook = serve(&certs_dir, webhook_port);
    until(
        &cluster,
        "the webhook answers",
        |answer| matches!(answer, Ok((image, _)) if image == REWRITTEN),
    );
    let (_, stderr) = run_pod(&cluster, INTERNAL).expect("admitted");
    assert!(!stderr.contains("registry-rewriter-guard"), "{stderr}");
}

/// Every object of the corpus, as the tests' tables and fixtures have them.
fn corpus() -> Vec<(String, Value)> {
    let mut objects = Vec::new();
    for name in objects::FIXTURES {
        let review = objects::fixture(name);
        if review["request"]["operation"] == "CREATE" {
            objects.push((name.to_string(), review["request"]["object"].clone()));
        }
    }
    for name in objects::CATALOG {
        objects.push((name.to_string(), objects::catalog(name)));
    }
    for entry in std::fs::read_dir(root().join("manifests/examples")).expect("examples") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example");
        objects.push((
            path.display().to_string(),
            serde_yaml_ng::from_str(&text).expect("YAML"),
        ));
    }
    let pod = |name: &str, containers: Value| {
        let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}});
        (name.to_owned(), object)
    };
    objects.extend([
        pod("plain", json!([{"name": "a", "image": INTERNAL}])),
        pod("upper-case-host", json!([{"name": "a", "image": "Docker-Registry.registry.svc:5000/a:1"}])),
        pod("unrelated", json!([{"name": "a", "image": "nginx:1.27", "args": ["--listen=my-docker-registry.registry:5000"]}])),
        pod("not-a-builder", json!([{"name": "a", "image": "alpine", "command": ["crane"], "args": ["copy", "docker-registry.registry.svc:5000/a", "b"]}])),
        pod("env-value", json!([{"name": "a", "image": "alpine", "env": [{"name": "PARAM_IMAGE", "value": "docker-registry.registry:5000/app:1"}]}])),
        pod("shell-script", json!([{"name": "a", "image": "alpine", "command": ["sh", "-c"], "args": ["docker pull docker-registry.registry.svc:5000/x"]}])),
        pod("build-arg", json!([{"name": "k", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": ["--destination=docker-registry.registry.svc:5000/app", "--build-arg", "BASE=docker-registry.registry.svc:5000/base"]}])),
        pod("quoted-buildkit-csv", json!([{"name": "b", "image": "moby/buildkit:v0.20.0", "command": ["buildctl-daemonless.sh"], "args": ["build", "--frontend", "dockerfile.v0", "--output", "type=image,\"name=docker-registry.registry.svc:5000/a,docker-registry.registry.svc:5000/b\",push=true"]}])),
        pod("kaniko-env", json!([{"name": "k", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": ["--destination=registry.k8s-lab.dev/app"], "env": [{"name": "KANIKO_REGISTRY_MIRROR", "value": "docker-registry.registry:5000"}]}])),
    ]);
    objects.extend(generated(60));
    objects
        .into_iter()
        .filter(|(_, o)| ["Pod", "Job"].contains(&o["kind"].as_str().unwrap_or_default()))
        .map(|(name, mut object)| {
            let metadata = object["metadata"].as_object_mut().expect("metadata");
            for field in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "ownerReferences",
            ] {
                metadata.remove(field);
            }
            metadata.insert("namespace".into(), json!(NAMESPACE));
            if !metadata.contains_key("name") {
                metadata.insert("name".into(), json!("generated"));
            }
            (name, object)
        })
        .collect()
}

/// Pods made from parts that the rules treat differently: internal
/// references in every case pattern and short name, near misses, the
/// target, builders moved and not, leftovers in args and env. A fixed
/// seed, so that a failure names a Pod that comes back.
fn generated(count: usize) -> Vec<(String, Value)> {
    const IMAGES: &[&str] = &[
        "docker-registry.registry.svc.cluster.local:5000/team/app:v1",
        "DOCKER-REGISTRY.registry.svc:5000/team/app@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001",
        "docker-registry.registry:05000/app",
        "docker-registry.registry.svc.cluster.local:50001/app:1",
        "mydocker-registry.registry:5000/app",
        "registry.k8s-lab.dev/team/app:v1",
        "nginx:1.27",
        "gcr.io/kaniko-project/executor:v1.23.2",
        "quay.io/buildah/stable:v1.38",
    ];
    const ARGS: &[&str] = &[
        "--destination=docker-registry.registry.svc:5000/team/app:v1",
        "--destination=registry.k8s-lab.dev/team/app:v1",
        "--destination=docker-registry.registry.evil.io:5000/app",
        "--cache-repo=docker-registry.registry:5000/cache",
        "--skip-tls-verify",
        "--build-arg=BASE=docker-registry.registry.svc:5000/base",
        "--context=dir:///workspace",
        "--label=a=b",
    ];
    const ENV: &[&str] = &[
        "docker-registry.registry:5000/x",
        "registry.k8s-lab.dev/x",
        "plain value",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % n
    };
    (0..count)
        .map(|i| {
            let mut spec = serde_json::Map::new();
            for list in ["containers", "initContainers"] {
                let containers = if list == "containers" { 1 + next(3) } else { next(2) };
                if containers == 0 {
                    continue;
                }
                let items: Vec<Value> = (0..containers)
                    .map(|c| {
                        let mut container = json!({"name": format!("{}-{c}", list.to_ascii_lowercase()), "image": IMAGES[next(IMAGES.len())]});
                        if next(2) == 0 {
                            let args: Vec<&str> = (0..1 + next(4)).map(|_| ARGS[next(ARGS.len())]).collect();
                            container["args"] = json!(args);
                        }
                        if next(3) == 0 {
                            container["env"] = json!([{"name": "IMAGE", "value": ENV[next(ENV.len())]}]);
                        }
                        container
                    })
                    .collect();
                spec.insert(list.to_owned(), Value::Array(items));
            }
            let name = format!("generated-{i}");
            let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
            (name, object)
        })
        .collect()
}

/// What the engine still finds in an admitted object: something to change,
/// or a value left naming a rewrite source.
fn engine_finds(object: &Value) -> (bool, bool) {
    let workload = Workload::find(
        if object["kind"] == "Job" { "batch" } else { "" },
        object["kind"].as_str().expect("kind"),
    )
    .expect("an enabled kind");
    let config = Config::default();
    let mutation = objects::run(object, workload, Scope::Create, config.rules());
    let images_left = mutation
        .changes
        .iter()
        .any(|c| c.kind == registry_rewriter::engine::ChangeKind::Image);
    (
        images_left,
        !mutation.is_empty() || !mutation.leftovers.is_empty(),
    )
}

/// The differential: with a back end answering, for every object the guard
/// warns about images exactly when the engine would still move one, and
/// about builds exactly when the engine still has something to do or to
/// say. The guard never fires on what a back end rewrote.
#[rstest]
#[case::webhook("webhook")]
#[case::policy("policy")]
fn the_guard_is_silent_exactly_where_nothing_is_left(#[case] back_end: &str) {
    let (Some(kube_lite), Some(_)) = (kube_lite::binary(), kubectl()) else {
        return;
    };
    let work = tempfile::tempdir().expect("dir");
    let certs_dir = work.path().join("certs");
    let webhook_port = free_port();
    let cluster = cluster(&kube_lite, work.path(), webhook_port);
    let _webhook = match back_end {
        "webhook" => {
            certs(&certs_dir);
            apply_overlay(&cluster, certs_dir.to_str().expect("UTF-8"));
            Some(serve(&certs_dir, webhook_port))
        }
        _ => {
            apply_overlay(&cluster, "manifests/overlays/policy");
            None
        }
    };
    apply_overlay(&cluster, "manifests/overlays/guard");
    cluster.ok(&["create", "namespace", NAMESPACE], None);
    until(
        &cluster,
        "the back end and the guard take effect",
        |answer| matches!(answer, Ok((image, _)) if image == REWRITTEN),
    );
    // The guard is on: a value no rule moves is warned about.
    let left = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "s", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "a", "image": "alpine", "env": [{"name": "IMAGE", "value": INTERNAL}]}]}});
    let started = Instant::now();
    loop {
        let output = cluster.run(
            &["create", "--dry-run=server", "-f", "-"],
            Some(&left.to_string()),
        );
        if text(&output.stderr).contains("registry-rewriter-guard-builds'") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the guard takes effect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut checked = 0;
    let mut warned = Vec::new();
    for (name, object) in corpus() {
        let output = cluster.run(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(&object.to_string()),
        );
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let admitted: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let images_warned = stderr.contains("registry-rewriter-guard-images'");
        let builds_warned = stderr.contains("registry-rewriter-guard-builds'");
        let (images_left, anything_left) = engine_finds(&admitted);
        assert!(
            !images_left,
            "{name}: the back end left an image: {admitted}"
        );
        assert_eq!(images_warned, images_left, "{name}: {stderr}");
        assert_eq!(builds_warned, anything_left, "{name}: {stderr}\n{admitted}");
        checked += 1;
        if builds_warned && !name.starts_with("generated-") {
            warned.push(name);
        }
    }
    assert!(checked >= 80, "{checked} objects");
    // What each back end leaves, by name: the leftovers, and under the
    // policy its documented difference (Kaniko's settings in env).
    // Tekton's Buildah task runs a script that reads the image from env.
    let mut expected = vec![
        "build-arg",
        "env-value",
        "not-a-builder",
        "shell-script",
        "tekton-buildah-0.9",
    ];
    if back_end == "policy" {
        expected.push("kaniko-env");
    }
    warned.sort();
    expected.sort();
    assert_eq!(warned, expected);
}
