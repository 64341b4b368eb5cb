//! The install as a user runs it, against a real API server: kube-lite
//! (k8s.io/apiserver over etcd, with the real admission chain). The steps
//! are the README's: `registry-rewriter certs`, `kubectl apply -k certs/`,
//! the webhook serving those certificates, the README's check with
//! `kubectl run --dry-run=server`, the seed's Kaniko Job and a Pod with
//! `kubectl apply -f`, a Pod made from a Job as its controller makes it
//! (it keeps its ServiceAccount's pull secrets), and `just undeploy`.
//!
//! kube-lite has no controllers, so the Deployment runs no Pods; the
//! webhook runs here instead, and kube-lite dials the Service at its port.

mod kube_lite;
mod objects;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube_lite::{free_port, text, Cluster};
use objects::kustomize::{copy_dir, kubectl, root};

/// `just`, which runs `just undeploy`.
fn just() -> Option<PathBuf> {
    objects::tools::command("just", &["--version"], "it runs `just undeploy`")
}

/// kube-lite, dialling the webhook's Service at `webhook_port`.
fn cluster(binary: &Path, dir: &Path, webhook_port: u16) -> Cluster {
    let service = format!("registry-rewriter/registry-rewriter:443=127.0.0.1:{webhook_port}");
    Cluster::start(binary, dir, &["--webhook-service".to_owned(), service])
}

/// The README's check: a Pod on the internal registry, created with
/// `--dry-run=server`; its image as admitted, and kubectl's warnings.
fn readme_check(cluster: &Cluster) -> (String, String) {
    cluster.ok(
        &[
            "-n",
            "dynamic-apps",
            "run",
            "rr-check",
            "--image=docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1",
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        None,
    )
}

fn pod(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  containers:\n  - name: webapp\n    image: docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1\n"
    )
}

/// A Job on the internal registry, stored; then a Pod made from it as the
/// Job controller makes it, with the ServiceAccount plugin's pull-secret
/// rule applied (kube-lite runs neither): admitted, that Pod keeps its
/// ServiceAccount's secret and gets ours.
fn job_pods_keep_service_account_secrets(cluster: &Cluster) {
    let job = objects::cluster::job_beside_a_vendor_image(
        "dynamic-apps",
        "migrate",
        "docker-registry.registry.svc:5000/dynamic-apps/migrate:1",
    );
    let (stdout, _) = cluster.ok(&["create", "-o", "json", "-f", "-"], Some(&job.to_string()));
    let job: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let template = &job["spec"]["template"]["spec"];
    assert_eq!(
        template["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/migrate:1"
    );
    assert!(
        objects::cluster::pull_secret_names(template).is_empty(),
        "no list is created in a pod template: {template}"
    );
    let mut pod = objects::cluster::pod_from_job(&job);
    objects::cluster::service_account_rule(&mut pod, &["vendor-creds"]);
    let (stdout, _) = cluster.ok(&["create", "-o", "json", "-f", "-"], Some(&pod.to_string()));
    let stored: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        objects::cluster::pull_secret_names(&stored["spec"]),
        ["vendor-creds", "registry-credentials"]
    );
}

/// The webhook's count of reviews, from its metrics.
fn reviews_seen(admin_port: u16) -> f64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", admin_port)).expect("admin port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("metrics");
    body.lines()
        .filter(|l| l.starts_with("registry_rewriter_admission_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn install_use_and_uninstall_as_the_readme_says() {
    let (Some(kube_lite), Some(_), Some(just)) = (kube_lite::binary(), kubectl(), just()) else {
        return;
    };
    let work = tempfile::tempdir().expect("dir");
    copy_dir(&root().join("manifests"), &work.path().join("manifests"));
    std::fs::create_dir_all(work.path().join("certs")).expect("dir");
    std::fs::copy(
        root().join("certs/kustomization.yaml"),
        work.path().join("certs/kustomization.yaml"),
    )
    .expect("copy");
    for file in ["justfile", "Cargo.toml"] {
        std::fs::copy(root().join(file), work.path().join(file)).expect("copy");
    }
    let certs = work.path().join("certs");

    // just certs
    let binary = env!("CARGO_BIN_EXE_registry-rewriter");
    let made = Command::new(binary)
        .args([
            "certs",
            "--service",
            "registry-rewriter",
            "--namespace",
            "registry-rewriter",
            "--out",
        ])
        .arg(&certs)
        .output()
        .expect("certs");
    assert!(made.status.success(), "{}", text(&made.stderr));

    let (webhook_port, admin_port) = (free_port(), free_port());
    let cluster = cluster(&kube_lite, work.path(), webhook_port);

    // just deploy (without `rollout status`: kube-lite runs no Pods)
    cluster.ok(&["apply", "-k", certs.to_str().expect("UTF-8")], None);
    let configuration = cluster.get("default", "mutatingwebhookconfiguration/registry-rewriter");
    assert!(configuration["webhooks"][0]["clientConfig"]["caBundle"].is_string());

    // The webhook, as the Deployment runs it, with the Secret's pair.
    let _webhook = kube_lite::serve(&certs, webhook_port, admin_port);

    cluster.ok(&["create", "namespace", "dynamic-apps"], None);

    // The README's check.
    let (image, warnings) = readme_check(&cluster);
    assert_eq!(image, "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1");
    assert!(
        warnings
            .contains("Warning: registry-rewriter: imagePullSecrets: added registry-credentials"),
        "{warnings}"
    );

    // The seed's Kaniko Job and a Pod, stored rewritten, every change printed.
    let job_file = root().join("manifests/examples/kaniko-build-job.yaml");
    let (_, warnings) = cluster.ok(&["apply", "-f", job_file.to_str().expect("UTF-8")], None);
    for line in [
        "Warning: registry-rewriter: containers[kaniko].args: --destination docker-registry.registry.svc.cluster.local:5000/platform/registry-rewriter:0.1.0 -> registry.k8s-lab.dev/platform/registry-rewriter:0.1.0",
        "Warning: registry-rewriter: containers[kaniko].args: removed --skip-tls-verify (the HTTPS registry needs no TLS exception)",
    ] {
        assert!(warnings.lines().any(|l| l == line), "{line}\nin:\n{warnings}");
    }
    let job = cluster.get("dynamic-apps", "job/build-registry-rewriter");
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--destination=registry.k8s-lab.dev/platform/registry-rewriter:0.1.0"),
        "{args}"
    );
    assert!(!args.contains("--skip-tls-verify"), "{args}");
    job_pods_keep_service_account_secrets(&cluster);

    let (_, warnings) = cluster.ok(&["apply", "-f", "-"], Some(&pod("dynamic-apps", "webapp")));
    assert!(
        warnings.contains("Warning: registry-rewriter: containers[webapp].image:"),
        "{warnings}"
    );
    let stored = cluster.get("dynamic-apps", "pod/webapp");
    assert_eq!(
        stored["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
    assert_eq!(
        stored["spec"]["imagePullSecrets"][0]["name"],
        "registry-credentials"
    );

    // An excluded namespace is never sent to the webhook.
    let (_, warnings) = cluster.ok(&["apply", "-f", "-"], Some(&pod("kube-system", "system")));
    assert!(!warnings.contains("registry-rewriter"), "{warnings}");
    let stored = cluster.get("kube-system", "pod/system");
    assert_eq!(
        stored["spec"]["containers"][0]["image"],
        "docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1"
    );

    // just undeploy: the webhook configuration goes first; afterwards the
    // API server calls nothing, and a Pod is stored as sent.
    let undeploy = Command::new(&just)
        .arg("--justfile")
        .arg(work.path().join("justfile"))
        .arg("undeploy")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("PATH", path_with(&cluster.kubectl))
        .output()
        .expect("just undeploy");
    let said = text(&undeploy.stdout) + &text(&undeploy.stderr);
    assert!(undeploy.status.success(), "{said}");
    let configuration_gone = said.find(
        "mutatingwebhookconfiguration.admissionregistration.k8s.io \"registry-rewriter\" deleted",
    );
    let namespace_gone = said.find("namespace \"registry-rewriter\" deleted");
    assert!(
        configuration_gone.is_some() && namespace_gone.is_some(),
        "{said}"
    );
    assert!(
        configuration_gone < namespace_gone,
        "the configuration goes first:\n{said}"
    );
    let before = reviews_seen(admin_port);
    let (_, warnings) = cluster.ok(&["apply", "-f", "-"], Some(&pod("dynamic-apps", "after")));
    assert!(!warnings.contains("registry-rewriter"), "{warnings}");
    let stored = cluster.get("dynamic-apps", "pod/after");
    assert_eq!(
        stored["spec"]["containers"][0]["image"],
        "docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1"
    );
    assert_eq!(
        reviews_seen(admin_port),
        before,
        "nothing called the webhook"
    );
}

/// PATH with kubectl's directory first, for recipes that call `kubectl`.
fn path_with(kubectl: &Path) -> std::ffi::OsString {
    let dir = kubectl.parent().filter(|d| !d.as_os_str().is_empty());
    let mut paths: Vec<PathBuf> = dir.map(Path::to_path_buf).into_iter().collect();
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH")
}

/// `kubectl apply -k manifests/overlays/policy` alone: no webhook runs, and
/// the API server's own policy plugin rewrites the seed's Job and a Pod,
/// and leaves excluded and ignored namespaces alone.
#[test]
fn the_policy_installs_without_a_webhook() {
    let (Some(kube_lite), Some(_)) = (kube_lite::binary(), kubectl()) else {
        return;
    };
    let work = tempfile::tempdir().expect("dir");
    let cluster = cluster(&kube_lite, work.path(), free_port());
    let overlay = root().join("manifests/overlays/policy");
    let (applied, _) = cluster.ok(&["apply", "-k", overlay.to_str().expect("UTF-8")], None);
    assert!(
        applied.contains(
            "mutatingadmissionpolicy.admissionregistration.k8s.io/registry-rewriter created"
        ),
        "{applied}"
    );
    cluster.ok(&["create", "namespace", "dynamic-apps"], None);

    // The plugin learns of new policies through its informers.
    let started = Instant::now();
    loop {
        let (image, _) = readme_check(&cluster);
        if image == "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the policy takes effect: {image}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let job_file = root().join("manifests/examples/kaniko-build-job.yaml");
    cluster.ok(&["apply", "-f", job_file.to_str().expect("UTF-8")], None);
    let job = cluster.get("dynamic-apps", "job/build-registry-rewriter");
    let template = &job["spec"]["template"]["spec"];
    let args = template["containers"][0]["args"].to_string();
    assert!(
        args.contains("--destination=registry.k8s-lab.dev/platform/registry-rewriter:0.1.0"),
        "{args}"
    );
    assert!(
        args.contains(
            "--registry-map=docker-registry.registry.svc.cluster.local:5000=registry.k8s-lab.dev"
        ),
        "{args}"
    );
    assert!(!args.contains("--skip-tls-verify"), "{args}");
    job_pods_keep_service_account_secrets(&cluster);

    cluster.ok(&["apply", "-f", "-"], Some(&pod("dynamic-apps", "webapp")));
    let stored = cluster.get("dynamic-apps", "pod/webapp");
    assert_eq!(
        stored["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
    assert_eq!(
        stored["spec"]["imagePullSecrets"][0]["name"],
        "registry-credentials"
    );
    assert_eq!(
        stored["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/original-images"],
        "{\"containers[webapp]\":\"docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1\"}"
    );

    cluster.ok(&["create", "namespace", "opted-out"], None);
    cluster.ok(
        &[
            "label",
            "namespace",
            "opted-out",
            "registry-rewriter.k8s-lab.dev/ignore=true",
        ],
        None,
    );
    for namespace in ["kube-system", "opted-out"] {
        cluster.ok(&["apply", "-f", "-"], Some(&pod(namespace, "as-sent")));
        let stored = cluster.get(namespace, "pod/as-sent");
        assert_eq!(
            stored["spec"]["containers"][0]["image"],
            "docker-registry.registry.svc.cluster.local:5000/dynamic-apps/test-webapp:v1",
            "{namespace}"
        );
    }
}
