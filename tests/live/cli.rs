//! The command line: `mutate`, `config` and `certs`, run as users run them.

use crate::objects;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let input = stdin.unwrap_or("").to_owned();
    let mut pipe = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const KANIKO_JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: build
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: kaniko
          image: gcr.io/kaniko-project/executor:v1.23.2
          args:
            - --dockerfile=Dockerfile
            - --destination=docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1
            - --cache-repo=docker-registry.registry.svc.cluster.local:5000/dynamic-apps/cache
            - --skip-tls-verify
"#;

#[test]
fn mutate_previews_the_seed_kaniko_job() {
    let output = run(&["mutate", "-f", "-"], Some(KANIKO_JOB));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let admitted: Value = serde_yaml_ng::from_slice(&output.stdout).expect("YAML out");
    let args: Vec<String> = serde_json::from_value(
        admitted["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .expect("args");
    let maps = &args[..3];
    assert!(
        maps.iter().all(|a| a.starts_with("--registry-map=")),
        "maps first: {args:?}"
    );
    assert!(maps
        .iter()
        .any(|a| a.starts_with("--registry-map=docker-registry.registry.svc.cluster.local:5000=")));
    let args = &args[3..];
    assert_eq!(args[0], "--dockerfile=Dockerfile");
    assert_eq!(
        args[1],
        "--destination=registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
    assert_eq!(
        args[2],
        "--cache-repo=registry.k8s-lab.dev/dynamic-apps/cache"
    );
    assert!(!args.iter().any(|a| a.contains("skip-tls-verify")));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Job/build: containers[kaniko].args: --destination"),
        "{stderr}"
    );
    assert!(stderr.contains("removed --skip-tls-verify"));
}

#[test]
fn mutate_reads_files_several_documents_and_lists() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("all.yaml");
    let manifests = format!(
        "{KANIKO_JOB}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: untouched}}\ndata: {{image: 'docker-registry.registry:5000/x'}}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {{name: p}}\n  spec:\n    containers: [{{name: a, image: 'docker-registry.registry:5000/a:1'}}]\n"
    );
    std::fs::write(&path, manifests).expect("write");
    let output = run(
        &["mutate", "-f", path.to_str().expect("path"), "-o", "json"],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).expect("JSON out");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[1]["data"]["image"], "docker-registry.registry:5000/x",
        "other kinds pass through"
    );
    assert_eq!(
        items[2]["items"][0]["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/a:1"
    );
    assert!(text(&output.stderr).contains("Pod/p: containers[a].image"));

    let patches = run(
        &["mutate", "-f", path.to_str().expect("path"), "-o", "patch"],
        None,
    );
    let lines: Vec<Value> = text(&patches.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "one patch per document");
    assert_eq!(lines[1], serde_json::json!([]));
    assert!(lines[2][0]["path"]
        .as_str()
        .expect("path")
        .starts_with("/items/0/spec/containers/0/image"));
}

#[test]
fn mutate_names_the_document_it_cannot_read() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers: 7\n";
    let output = run(&["mutate"], Some(input));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("document 2 (Pod/broken)"), "{stderr}");
    assert!(stderr.contains("containers"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing half-printed");

    let output = run(&["mutate"], Some("key: [unclosed\n"));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("stdin: document 1"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn config_prints_the_effective_configuration() {
    let output = run(&["config", "-o", "json"], None);
    assert!(output.status.success());
    let config: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(config["rewrites"][0]["to"], "registry.k8s-lab.dev");
    assert_eq!(config["imagePullSecrets"][0], "registry-credentials");

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "imagePullSecrets: [pull-a, pull-b]\n").expect("write");
    let output = run(&["config", "--config", path.to_str().expect("path")], None);
    let printed: Value = serde_yaml_ng::from_slice(&output.stdout).expect("YAML");
    assert_eq!(
        printed["imagePullSecrets"],
        serde_json::json!(["pull-a", "pull-b"])
    );
    assert_eq!(
        printed["rewrites"].as_array().expect("defaults kept").len(),
        3
    );
}

#[test]
fn a_bad_config_fails_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "rewrites:\n  - from: docker-registry.registry:5000\n    to: registry.k8s-lab.dev\n    pullSecret: x\n").expect("write");
    for command in ["config", "mutate", "serve"] {
        let output = run(
            &[command, "--config", path.to_str().expect("path")],
            Some(""),
        );
        assert!(!output.status.success(), "{command}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("bad.yaml"), "{command}: {stderr}");
        assert!(
            stderr.contains("rewrites[0]") && stderr.contains("pullSecret"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn serve_fails_fast_on_a_missing_certificate() {
    let output = run(
        &[
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("/nonexistent/tls.crt"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn certs_writes_a_pair_for_the_service_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out");
    let output = run(
        &[
            "certs",
            "--service",
            "hook",
            "--namespace",
            "infra",
            "--out",
            out.to_str().expect("path"),
            "--dns",
            "hook.example",
            "--ip",
            "10.0.0.7",
            "--valid-days",
            "30",
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bundle = text(&output.stdout).trim().to_owned();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&bundle)
        .expect("caBundle is base64");
    assert_eq!(decoded, std::fs::read(out.join("ca.crt")).expect("ca.crt"));

    let cert_pem = std::fs::read(out.join("tls.crt")).expect("tls.crt");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&cert_pem).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    let san = format!(
        "{:?}",
        cert.subject_alternative_name()
            .expect("ok")
            .expect("SAN")
            .value
    );
    for name in [
        "\"hook\"",
        "\"hook.infra\"",
        "\"hook.infra.svc\"",
        "\"hook.infra.svc.cluster.local\"",
        "\"hook.example\"",
    ] {
        assert!(san.contains(name), "{name} in {san}");
    }
    assert!(san.contains("IPAddress([10, 0, 0, 7])"), "{san}");
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert!((29..=31).contains(&days), "{days}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("tls.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
}

#[test]
fn fixtures_match_the_shared_copies() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if !shared.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has the shared fixtures beside the checkout"
        );
        eprintln!("skipping: no shared fixtures beside the checkout");
        return;
    }
    for name in objects::FIXTURES {
        let ours = objects::fixture_bytes(name);
        let theirs = std::fs::read(shared.join(name)).expect("shared fixture");
        assert_eq!(ours, theirs, "{name} differs from the shared fixture");
    }
}

#[test]
fn justfile_documents_every_recipe() {
    let just = std::env::var_os("JUST").unwrap_or_else(|| "just".into());
    let Ok(output) = Command::new(&just)
        .args(["--dump", "--dump-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must check the justfile, but just was not found"
        );
        eprintln!("skipping: just not found");
        return;
    };
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dump: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let recipes = dump["recipes"].as_object().expect("recipes");
    for name in [
        "build",
        "test",
        "lint",
        "run",
        "demo",
        "certs",
        "deploy",
        "undeploy",
        "image",
        "bench",
        "bench-load",
        "fuzz",
    ] {
        let recipe = recipes.get(name).unwrap_or_else(|| panic!("recipe {name}"));
        let doc = recipe["doc"].as_str().unwrap_or("");
        assert!(
            doc.len() > 10,
            "recipe {name} explains itself in `just --list`"
        );
    }
    let undeploy = recipes["undeploy"]["body"].to_string();
    let webhook = undeploy
        .find("mutatingwebhookconfiguration")
        .expect("undeploy deletes the webhook configuration");
    let rest = undeploy
        .find("delete -k")
        .expect("undeploy deletes the rest");
    assert!(webhook < rest, "the webhook configuration goes first");
}

/// The builder examples, previewed as a user would: each is rewritten, and
/// each change is explained, naming the builder where it is not Kaniko.
#[rstest::rstest]
#[case::tekton_step_running_kaniko(
    "tekton-kaniko-pod.yaml",
    "Pod/build-webapp-run-pod: containers[step-build-and-push].args: --destination"
)]
#[case::argo_step_running_buildctl_daemonless(
    "argo-buildkit-pod.yaml",
    "Pod/build-webapp-1234567890: containers[main].args (buildkit): --output: removed registry.insecure=true"
)]
#[case::buildah_job(
    "buildah-push-job.yaml",
    "Job/build-webapp-buildah: containers[push].args (buildah): removed --tls-verify=false"
)]
fn mutate_rewrites_each_builder_example(#[case] file: &str, #[case] line: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/examples")
        .join(file);
    let output = run(&["mutate", "-f", path.to_str().expect("UTF-8")], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.lines().any(|l| l.starts_with(line)), "{stderr}");
    let admitted = text(&output.stdout);
    let built_from_internal = admitted
        .lines()
        .filter(|l| !l.contains("--registry-map="))
        .any(|l| l.contains("docker-registry.registry"));
    assert!(!built_from_internal, "{admitted}");
    assert!(!admitted.contains("registry.insecure=true"), "{admitted}");
    assert!(!admitted.contains("--skip-tls-verify"), "{admitted}");
}

// --- mutate as a CI gate and a cluster audit -----------------------------------

fn run_code(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let output = run(args, stdin);
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

fn examples() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/examples")
        .display()
        .to_string()
}

#[test]
fn exit_code_says_whether_anything_would_change() {
    let (code, admitted, stderr) = run_code(&["mutate", "-f", &examples(), "--exit-code"], None);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("4 of 4 documents would change: 22 build args, 1 build credential")
    );
    // What admission makes of them needs nothing more.
    let (code, _, stderr) = run_code(&["mutate", "--exit-code"], Some(&admitted));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.lines().last(), Some("0 of 4 documents would change"));
}

#[test]
fn exit_code_is_above_one_on_an_error_and_unchanged_without_the_flag() {
    let (code, _, stderr) = run_code(&["mutate", "-f", "/nonexistent.yaml", "--exit-code"], None);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, _) = run_code(&["mutate", "-f", "/nonexistent.yaml"], None);
    assert_eq!(code, Some(1));
    let (code, _, _) = run_code(&["mutate", "-f", &examples()], None);
    assert_eq!(code, Some(0), "without --exit-code a change is no failure");
}

#[test]
fn files_and_directories_are_read_as_kubectl_reads_them() {
    let dir = tempfile::tempdir().expect("dir");
    let nested = dir.path().join("nested");
    std::fs::create_dir(&nested).expect("dir");
    let pod = |name: &str| {
        format!("{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{containers: [{{name: a, image: docker-registry.registry:5000/a}}]}}}}")
    };
    std::fs::write(dir.path().join("a.yaml"), pod("a")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), pod("ignored")).expect("write");
    std::fs::write(nested.join("b.yml"), pod("b")).expect("write");
    let root = dir.path().to_str().expect("UTF-8");
    let (_, _, stderr) = run_code(&["mutate", "-f", root, "--exit-code"], None);
    assert_eq!(
        stderr.lines().last(),
        Some("1 of 1 documents would change: 1 image, 1 pull secret")
    );
    let (_, _, stderr) = run_code(&["mutate", "-f", root, "-R", "--exit-code"], None);
    assert_eq!(
        stderr.lines().last(),
        Some("2 of 2 documents would change: 2 images, 2 pull secrets")
    );
    let extra = nested.join("b.yml");
    let (_, _, stderr) = run_code(
        &[
            "mutate",
            "-f",
            root,
            "-f",
            extra.to_str().expect("UTF-8"),
            "--exit-code",
        ],
        None,
    );
    assert_eq!(
        stderr.lines().last(),
        Some("2 of 2 documents would change: 2 images, 2 pull secrets")
    );
}

/// `kubectl get pods,deployments -A -o json`, as an audit reads it: every
/// kind's pod template counts, whether or not the webhook mutates the kind.
#[test]
fn a_table_audits_every_workload_kind() {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
             "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "docker-registry.registry:5000/web:1"}],
                                              "imagePullSecrets": [{"name": "vendor-creds"}]}}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok", "namespace": "team-b"},
             "spec": {"containers": [{"name": "ok", "image": "registry.k8s-lab.dev/ok:1"}], "imagePullSecrets": [{"name": "registry-credentials"}]}}
        ],
        "kind": "List",
        "metadata": {"resourceVersion": ""}
    });
    let (code, table, stderr) = run_code(
        &["mutate", "--exit-code", "-o", "table"],
        Some(&serde_json::to_string_pretty(&list).expect("JSON")),
    );
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "KIND", "NAME", "FIELD", "OLD", "NEW"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "team-a",
            "Deployment",
            "web",
            "containers[web].image",
            "docker-registry.registry:5000/web:1",
            "registry.k8s-lab.dev/web:1"
        ]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>()[3..],
        ["imagePullSecrets", "<none>", "registry-credentials"]
    );
    let columns = |line: &str| {
        line.find("FIELD")
            .or_else(|| line.find("containers"))
            .or_else(|| line.find("imagePull"))
    };
    assert_eq!(columns(lines[0]), columns(lines[1]), "aligned:\n{table}");
    assert_eq!(columns(lines[0]), columns(lines[2]), "aligned:\n{table}");
    assert_eq!(
        stderr.lines().last(),
        Some("1 of 2 documents would change: 1 image, 1 pull secret")
    );
}

/// A List of 10,000 Pods is read item by item (docs/performance.md has its
/// time and memory).
#[test]
fn a_list_of_ten_thousand_pods() {
    let items: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            let image = if i % 2 == 0 {
                format!("docker-registry.registry.svc:5000/team/app{i}:v1")
            } else {
                format!("docker.io/library/nginx:1.{}", i % 30)
            };
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("p{i}"), "namespace": format!("ns{}", i % 50)},
                "spec": {"containers": [{"name": "app", "image": image}]},
                "status": {"phase": "Running"}})
        })
        .collect();
    let list =
        serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}});
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pods.json");
    std::fs::write(&path, serde_json::to_vec(&list).expect("JSON")).expect("write");
    let (code, table, stderr) = run_code(
        &[
            "mutate",
            "-f",
            path.to_str().expect("UTF-8"),
            "--exit-code",
            "-o",
            "table",
        ],
        None,
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.lines().last(),
        Some("5000 of 10000 documents would change: 5000 images, 5000 pull secrets")
    );
    assert_eq!(table.lines().count(), 1 + 10_000);
}
