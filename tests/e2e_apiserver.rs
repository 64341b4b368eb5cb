//! End to end through kube-apiserver's own MutatingAdmissionWebhook plugin
//! (the `apiserver-admit` harness): real TLS verification against the
//! caBundle for the Service name, the manifests' rules, namespaceSelector and
//! matchConditions, response validation, patch application and typed
//! decoding of the result.
//!
//! The harness is found through `APISERVER_ADMIT`, or beside the checkout as
//! `../shared/tools/apiserver-admit/apiserver-admit`. Where it is absent (a
//! user's clone) the tests skip with a message; under CI they must run.

mod apiserver_admit;
mod live_server;
mod objects;

use std::path::{Path, PathBuf};
use std::process::Command;

use apiserver_admit::{Call, Harness};
use base64::Engine as _;
use objects::{apply_response, check_fixture_outcome, fixture, FIXTURES};
use serde_json::{json, Value};

fn harness() -> Option<PathBuf> {
    apiserver_admit::find()
}

/// Typed decoding in the API server writes empty times as null; drop nulls
/// so both sides compare by content.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_through_the_api_server_plugin() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let client = server.client();
    for name in FIXTURES {
        let review = fixture(name);
        let call = Call::of_review(&review);
        let admission = tokio::task::block_in_place(|| harness.admit(call));
        assert_eq!(admission.code, 0, "{name}: admitted\n{}", admission.stderr);

        // What our own tests accept must be what the API server produces.
        let response = client.post(objects::fixture_bytes(name)).await.json();
        let ours = apply_response(&review, &response);
        check_fixture_outcome(name, &admission.admitted, &response);
        assert_eq!(
            without_nulls(&admission.admitted),
            without_nulls(&ours),
            "{name}: the API server's result differs from ours"
        );
        let our_warnings = warnings_of(&response);
        assert_eq!(
            admission.warnings, our_warnings,
            "{name}: kubectl would print these"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_the_webhook_must_never_see() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    let internal_image = pod["spec"]["containers"][0]["image"].clone();

    let rewritten =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(rewritten.code, 0, "{}", rewritten.stderr);
    assert_eq!(
        rewritten.admitted["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
    let before = server.requests_seen().await;
    assert_eq!(before, 1.0);

    for (namespace, labels) in [
        ("kube-system", ""),
        ("kube-node-lease", ""),
        ("registry-rewriter", ""),
        (
            "team-opted-out",
            "registry-rewriter.k8s-lab.dev/ignore=true",
        ),
    ] {
        let mut pod = pod.clone();
        pod["metadata"]["namespace"] = json!(namespace);
        let call = Call {
            namespace_labels: labels,
            ..Call::create(&pod, namespace)
        };
        let admission = tokio::task::block_in_place(|| harness.admit(call));
        assert_eq!(admission.code, 0, "{namespace}: {}", admission.stderr);
        assert_eq!(
            admission.admitted["spec"]["containers"][0]["image"], internal_image,
            "{namespace}"
        );
        assert!(admission.warnings.is_empty(), "{namespace}");
    }
    assert_eq!(
        server.requests_seen().await,
        before,
        "none of those requests reached the webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_annotation_is_not_even_sent() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let mut pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    pod["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/skip"] = json!("true");
    let admission =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        pod["spec"]["containers"][0]["image"]
    );
    assert_eq!(
        server.requests_seen().await,
        0.0,
        "the matchCondition saved the call"
    );

    // Any other value is sent and rewritten, exactly as the webhook itself decides.
    pod["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/skip"] = json!("TRUE");
    let admission =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_is_rewritten_and_pod_updates_are_not() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let review = fixture("pod-update-ephemeralcontainers-debug.json");
    let call = Call {
        operation: "UPDATE",
        old_object: Some(&review["request"]["oldObject"]),
        subresource: Some("ephemeralcontainers"),
        ..Call::create(&review["request"]["object"], "dynamic-apps")
    };
    let admission = tokio::task::block_in_place(|| harness.admit(call));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        admission.admitted["spec"]["ephemeralContainers"][0]["image"],
        "registry.k8s-lab.dev/tools/netshoot:v0.13"
    );

    // A plain UPDATE of a Pod (not in the rules) keeps even an internal image.
    let mut old = review["request"]["oldObject"].clone();
    old["spec"]["containers"][0]["image"] = json!("docker-registry.registry:5000/api:v3");
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"tier": "backend"});
    let call = Call {
        operation: "UPDATE",
        old_object: Some(&old),
        ..Call::create(&new, "dynamic-apps")
    };
    let admission = tokio::task::block_in_place(|| harness.admit(call));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        "docker-registry.registry:5000/api:v3"
    );
}

/// The pre-filter: a Pod whose containers name no rule registry is never
/// sent, not even a build with TLS flags of its own; one whose env names
/// the internal registry is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_name_no_rule_registry_are_not_sent() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let build = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "build", "namespace": "team"},
        "spec": {"containers": [
            {"name": "app", "image": "quay.io/team/app:1", "env": [{"name": "UPSTREAM", "value": "registry.example"}]},
            {"name": "kaniko", "image": "gcr.io/kaniko-project/executor:v1.23.2",
             "args": ["--destination=quay.io/team/app:1", "--skip-tls-verify"]}
        ]}
    });
    let mut no_match = fixture("pod-create-no-match.json")["request"]["object"].clone();
    no_match["metadata"]["namespace"] = json!("team");
    let unsent = [no_match, build.clone()];
    for pod in &unsent {
        let admission = tokio::task::block_in_place(|| harness.admit(Call::create(pod, "team")));
        assert_eq!(admission.code, 0, "{}", admission.stderr);
        assert_eq!(
            without_empty_objects(&admission.admitted),
            without_empty_objects(pod)
        );
    }
    assert_eq!(
        server.requests_seen().await,
        0.0,
        "the matchCondition saved the calls"
    );

    let mut named = build;
    named["spec"]["containers"][0]["env"][0]["value"] = json!("DOCKER-REGISTRY.registry:5000");
    let admission = tokio::task::block_in_place(|| harness.admit(Call::create(&named, "team")));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        server.requests_seen().await,
        1.0,
        "an env value names the registry"
    );
}

/// A Pod already rewritten (its images on the HTTPS registry, the pull
/// secret in place) is not sent again, so a reinvocation costs nothing;
/// without the secret it is, and so is a builder on the HTTPS registry with
/// a flag the engine removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_already_rewritten_are_not_sent_again() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let rewritten = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team"},
        "spec": {
            "containers": [{"name": "app", "image": "registry.k8s-lab.dev/team/app:v1", "args": ["--port=8080"]}],
            "imagePullSecrets": [{"name": "registry-credentials"}]
        }
    });
    let admit = |pod: &Value| {
        let admission = tokio::task::block_in_place(|| harness.admit(Call::create(pod, "team")));
        assert_eq!(admission.code, 0, "{}", admission.stderr);
        admission.admitted
    };
    assert_eq!(
        without_empty_objects(&admit(&rewritten)),
        without_empty_objects(&rewritten)
    );
    assert_eq!(server.requests_seen().await, 0.0, "not sent again");

    let mut without_secret = rewritten.clone();
    without_secret["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("imagePullSecrets");
    let admitted = admit(&without_secret);
    assert_eq!(
        admitted["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    assert_eq!(server.requests_seen().await, 1.0, "sent for the secret");

    let mut build = rewritten;
    build["spec"]["containers"][0] = json!({
        "name": "build", "image": "registry.k8s-lab.dev/kaniko-project/executor:v1.23.2",
        "command": ["/kaniko/executor"], "args": ["--destination=quay.io/team/app:1", "--skip-tls-verify"]
    });
    let admitted = admit(&build);
    let args = admitted["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert!(!args.contains(&json!("--skip-tls-verify")), "{args:?}");
    assert_eq!(server.requests_seen().await, 2.0, "sent for the flag");
}

/// A matchCondition that fails to evaluate, under `failurePolicy: Ignore`:
/// the plugin skips the webhook and admits the Pod as it is, never blocks
/// it (the API's documented order: any false skips, an error under Ignore
/// skips too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_match_condition_skips_the_webhook_and_blocks_nothing() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let failing = |configuration: &mut Value| {
        // An error at run time, not at compile time: no such key.
        configuration["webhooks"][0]["matchConditions"][1]["expression"] =
            json!("object.spec.noSuchField.size() > 0");
    };
    let harness = Harness::new_webhook_edited(binary, &server, failing);
    let pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    let admission =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        pod["spec"]["containers"][0]["image"]
    );
    assert_eq!(server.requests_seen().await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_fails_open() {
    let Some(binary) = harness() else { return };
    let mut server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    server.begin_shutdown().await.expect("stopped");
    let pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    let admission =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(
        admission.code, 0,
        "failurePolicy Ignore admits the Pod: {}",
        admission.stderr
    );
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        pod["spec"]["containers"][0]["image"]
    );
}

/// The no-cert-manager install path exactly as kubectl renders it: the
/// caBundle that kustomize's replacement writes (base64 over several lines)
/// must verify the serving certificate in kube-apiserver's plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_overlay_as_rendered_works_end_to_end() {
    let Some(binary) = harness() else { return };
    let Some(kubectl) = objects::kustomize::kubectl() else {
        return;
    };
    let server = live_server::start().await;
    let scratch = tempfile::tempdir().expect("dir");
    let certs = scratch.path().join("certs");
    std::fs::create_dir(&certs).expect("dir");
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::copy(server.dir.path().join(file), certs.join(file)).expect("copy");
    }
    let root = objects::kustomize::root();
    std::fs::copy(
        root.join("certs/kustomization.yaml"),
        certs.join("kustomization.yaml"),
    )
    .expect("copy");
    objects::kustomize::copy_dir(&root.join("manifests"), &scratch.path().join("manifests"));
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&certs)
        .output()
        .expect("kubectl");
    assert!(output.status.success());
    let rendered = String::from_utf8(output.stdout).expect("UTF-8");
    let configuration = rendered
        .split("\n---\n")
        .find(|document| document.contains("kind: MutatingWebhookConfiguration"))
        .expect("rendered");

    let harness = Harness::webhook(binary, &server);
    std::fs::write(harness.dir.path().join("mwc.json"), configuration)
        .expect("write the YAML as rendered");
    let pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    let admission =
        tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "dynamic-apps")));
    assert_eq!(admission.code, 0, "{}", admission.stderr);
    assert_eq!(
        admission.admitted["spec"]["containers"][0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
}

/// A second webhook that injects a sidecar from the internal registry after
/// ours: with reinvocationPolicy IfNeeded, the API server calls us again
/// and the sidecar is rewritten too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_injected_by_a_later_webhook_are_rewritten_on_reinvocation() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let (injector_addr, injector_ca) = start_sidecar_injector().await;
    let injector = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "sidecar-injector"},
        "webhooks": [{
            "name": "inject.sidecars.example",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {
                "service": {"namespace": "injection", "name": "sidecar-injector", "path": "/inject"},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(injector_ca)
            },
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
        }]
    });
    let injector_path = harness.dir.path().join("injector.json");
    std::fs::write(&injector_path, injector.to_string()).expect("write");
    let pod = fixture("pod-create-from-deployment.json")["request"]["object"].clone();
    let object_path = harness.dir.path().join("pod.json");
    std::fs::write(&object_path, pod.to_string()).expect("write");
    let output = tokio::task::block_in_place(|| {
        Command::new(&harness.binary)
            .arg("--config")
            .arg(harness.dir.path().join("mwc.json"))
            .arg("--config")
            .arg(&injector_path)
            .arg("--object")
            .arg(&object_path)
            .args(["--namespace", "dynamic-apps", "--service", &harness.service])
            .args([
                "--service",
                &format!("injection/sidecar-injector:443={injector_addr}"),
            ])
            .output()
            .expect("the harness runs")
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let admitted: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let containers = admitted["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 2, "the sidecar was injected");
    assert_eq!(
        containers[0]["image"],
        "registry.k8s-lab.dev/dynamic-apps/test-webapp:v1"
    );
    assert_eq!(
        containers[1]["image"], "registry.k8s-lab.dev/mesh/proxy:1.0",
        "the sidecar was rewritten on reinvocation"
    );
    let recorded: Value = serde_json::from_str(
        admitted["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/original-images"]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON");
    assert_eq!(
        recorded["containers[proxy]"],
        "docker-registry.registry:5000/mesh/proxy:1.0"
    );
    assert!(
        stderr.contains("round_1_index_0"),
        "a second round ran: {stderr}"
    );
}

/// A minimal mutating webhook over TLS that adds a `proxy` container from the
/// internal registry unless one is there.
async fn start_sidecar_injector() -> (std::net::SocketAddr, String) {
    use registry_rewriter::certs::{CertRequest, GeneratedCerts};
    let certs = GeneratedCerts::generate(&CertRequest {
        service: "sidecar-injector".into(),
        namespace: "injection".into(),
        extra_dns: vec![],
        extra_ips: vec![],
        valid_days: 1,
    })
    .expect("certificates");
    let dir = tempfile::tempdir().expect("dir");
    certs.write_to(dir.path()).expect("write");
    let files = registry_rewriter::server::tls::CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let reloader = registry_rewriter::server::tls::CertReloader::new(
        files,
        registry_rewriter::metrics::Metrics::new(),
    )
    .expect("pair");
    let config =
        registry_rewriter::server::tls::server_config(reloader.resolver(), None).expect("TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _keep = dir;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let body = request.into_body().collect().await?.to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let has_proxy = review["request"]["object"]["spec"]["containers"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c["name"] == "proxy"));
                        let mut response =
                            json!({"uid": review["request"]["uid"], "allowed": true});
                        if !has_proxy {
                            let patch = json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "proxy", "image": "docker-registry.registry:5000/mesh/proxy:1.0"}}]);
                            response["patchType"] = json!("JSONPatch");
                            response["patch"] =
                                json!(base64::engine::general_purpose::STANDARD
                                    .encode(patch.to_string()));
                        }
                        let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(out.to_string()),
                        )))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    (addr, certs.ca_pem)
}

/// Every builder and CI wrapper in `manifests/examples/`, as sent (Pods and
/// Jobs), and each Pod's spec again as a Job's pod template: through the
/// API server's plugin, the stored object is what our own answer makes of
/// it, kubectl prints our warnings, and no build still names the internal
/// registry or weakens TLS (but Buildah's `bud`, which keeps its flag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builder_example_through_the_api_server_plugin() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let client = server.client();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(&examples).expect("examples") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example");
        let object: Value = serde_yaml_ng::from_str(&text).expect("YAML");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if object["kind"] == "Pod" {
            let job = json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "as-job", "namespace": object["metadata"]["namespace"]},
                "spec": {"template": {"spec": object["spec"]}}
            });
            objects.push((format!("{name} as a Job"), job));
        }
        objects.push((name, object));
    }
    assert!(
        objects.len() >= 6,
        "every builder and wrapper has an example"
    );
    for (name, object) in objects {
        let namespace = object["metadata"]["namespace"].as_str().expect("namespace");
        let admission =
            tokio::task::block_in_place(|| harness.admit(Call::create(&object, namespace)));
        assert_eq!(admission.code, 0, "{name}: admitted\n{}", admission.stderr);

        let (group, version) = match object["apiVersion"].as_str().expect("apiVersion") {
            "v1" => ("", "v1"),
            other => other.split_once('/').expect("group/version"),
        };
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "e2e", "operation": "CREATE", "namespace": namespace,
                "kind": {"group": group, "version": version, "kind": object["kind"]},
                "object": object
            }
        });
        let response = client
            .post(serde_json::to_vec(&review).expect("JSON"))
            .await
            .json();
        let ours = apply_response(&review, &response);
        // These manifests were never through the API server's decoding,
        // which writes empty objects (`resources: {}`) where the file has
        // none.
        assert_eq!(
            without_empty_objects(&without_nulls(&admission.admitted)),
            without_empty_objects(&without_nulls(&ours)),
            "{name}: the API server's result differs from ours"
        );
        let our_warnings = warnings_of(&response);
        assert_eq!(
            admission.warnings, our_warnings,
            "{name}: kubectl would print these"
        );
        assert!(
            !our_warnings.is_empty(),
            "{name}: every change is explained"
        );

        let spec = match admission.admitted["kind"].as_str() {
            Some("Job") => &admission.admitted["spec"]["template"]["spec"],
            _ => &admission.admitted["spec"],
        };
        let buds = ["containers", "initContainers"]
            .iter()
            .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default())
            .filter(|c| {
                c["args"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("bud")))
            })
            .count();
        // Every string a container runs with, but the registry maps, which
        // name the internal registry in order to send it elsewhere.
        let strings: Vec<String> = ["containers", "initContainers"]
            .iter()
            .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default())
            .flat_map(|c| {
                let mut all = vec![c["image"].clone()];
                for list in ["command", "args"] {
                    all.extend(c[list].as_array().cloned().unwrap_or_default());
                }
                all
            })
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.starts_with("--registry-map="))
            .collect();
        for weakening in [
            "docker-registry.registry",
            "registry.insecure=true",
            "--skip-tls-verify",
            "--insecure",
        ] {
            assert!(
                !strings.iter().any(|s| s.contains(weakening)),
                "{name}: {weakening} is left: {strings:?}"
            );
        }
        let stored = strings.join(" ");
        assert_eq!(
            stored.matches("--tls-verify=false").count(),
            buds,
            "{name}: only bud keeps it"
        );
    }
}

/// The warnings of an AdmissionReview response, as kubectl would print them.
fn warnings_of(response: &Value) -> Vec<String> {
    response["response"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn without_empty_objects(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| v.as_object().is_none_or(|o| !o.is_empty()))
                .map(|(k, v)| (k.clone(), without_empty_objects(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty_objects).collect()),
        other => other.clone(),
    }
}

/// A Job whose ServiceAccount carries `vendor-creds`: the stored template
/// gets no list of ours, so the Pod the Job controller makes from it gets
/// the ServiceAccount's from the ServiceAccount plugin, then ours at its own
/// admission. Both pull secrets are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_pods_keep_their_service_accounts_pull_secrets() {
    let Some(binary) = harness() else { return };
    let server = live_server::start().await;
    let harness = Harness::webhook(binary, &server);
    let job = objects::cluster::job_beside_a_vendor_image(
        "team",
        "build",
        "docker-registry.registry.svc:5000/team/app:1",
    );
    let stored = tokio::task::block_in_place(|| harness.admit(Call::create(&job, "team")));
    assert_eq!(stored.code, 0, "{}", stored.stderr);
    let template = &stored.admitted["spec"]["template"]["spec"];
    assert_eq!(
        template["containers"][0]["image"],
        "registry.k8s-lab.dev/team/app:1"
    );
    assert!(
        objects::cluster::pull_secret_names(template).is_empty(),
        "{template}"
    );
    assert!(
        stored
            .warnings
            .iter()
            .any(|w| w.contains("not added to the pod template")),
        "{:?}",
        stored.warnings
    );

    let mut pod = objects::cluster::pod_from_job(&stored.admitted);
    objects::cluster::service_account_rule(&mut pod, &["vendor-creds"]);
    let admitted = tokio::task::block_in_place(|| harness.admit(Call::create(&pod, "team")));
    assert_eq!(admitted.code, 0, "{}", admitted.stderr);
    assert_eq!(
        objects::cluster::pull_secret_names(&admitted.admitted["spec"]),
        ["vendor-creds", "registry-credentials"]
    );
}
