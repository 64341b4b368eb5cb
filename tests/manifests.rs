//! The install manifests: rendered with kustomize (kubectl), round-tripped
//! through their k8s-openapi types, and held to the invariants that keep a
//! cluster safe. kubectl comes from `KUBECTL` or the PATH; under CI it must
//! be there, elsewhere the rendering tests skip with a message.

mod objects;

use objects::kustomize::{copy_dir, kubectl, render, root};

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use registry_rewriter::config::Config;
use registry_rewriter::policy;
use rstest::rstest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// The no-cert-manager path, rendered with freshly generated certificates
/// in a scratch copy of `certs/`, so a developer's own files are untouched.
fn render_certs_overlay(kubectl: &Path) -> (Vec<Value>, String) {
    let scratch = tempfile::tempdir().expect("dir");
    let certs = scratch.path().join("certs");
    std::fs::create_dir(&certs).expect("dir");
    std::fs::copy(
        root().join("certs/kustomization.yaml"),
        certs.join("kustomization.yaml"),
    )
    .expect("copy");
    let manifests = scratch.path().join("manifests");
    copy_dir(&root().join("manifests"), &manifests);
    let generated = common_certs();
    generated.write_to(&certs).expect("write");
    (render(kubectl, &certs), generated.ca_bundle())
}

fn common_certs() -> registry_rewriter::certs::GeneratedCerts {
    registry_rewriter::certs::GeneratedCerts::generate(&registry_rewriter::certs::CertRequest {
        service: "registry-rewriter".into(),
        namespace: "registry-rewriter".into(),
        extra_dns: vec![],
        extra_ips: vec![],
        valid_days: 1,
    })
    .expect("certificates")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} is rendered"))
}

fn typed<T: DeserializeOwned + Serialize>(object: &Value) -> T {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{}/{}: {e}", object["kind"], object["metadata"]["name"]));
    let back = serde_json::to_value(&typed).expect("serialises");
    assert_eq!(
        &back, object,
        "{}/{} loses or changes a field in its typed form",
        object["kind"], object["metadata"]["name"]
    );
    typed
}

/// Every built-in object must survive its k8s-openapi type unchanged, which
/// catches misspelled and misplaced fields.
fn round_trip_all(objects: &[Value]) {
    for object in objects {
        match object["kind"].as_str().expect("kind") {
            "Namespace" => drop(typed::<Namespace>(object)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(object)),
            "ConfigMap" => drop(typed::<ConfigMap>(object)),
            "Secret" => drop(typed::<Secret>(object)),
            "Deployment" => drop(typed::<Deployment>(object)),
            "Service" => drop(typed::<Service>(object)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(object)),
            "NetworkPolicy" => drop(typed::<NetworkPolicy>(object)),
            "MutatingWebhookConfiguration" => drop(typed::<MutatingWebhookConfiguration>(object)),
            "ClusterRole" => drop(typed::<ClusterRole>(object)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(object)),
            "Role" => drop(typed::<Role>(object)),
            "RoleBinding" => drop(typed::<RoleBinding>(object)),
            "Issuer" | "Certificate" => assert_eq!(object["apiVersion"], "cert-manager.io/v1"),
            other => panic!("unexpected kind {other} in the manifests"),
        }
    }
}

#[test]
fn base_renders_round_trips_and_is_safe() {
    let Some(kubectl) = kubectl() else { return };
    let objects = render(&kubectl, &root().join("manifests"));
    round_trip_all(&objects);
    for object in &objects {
        let cluster_scoped = ["Namespace", "MutatingWebhookConfiguration"]
            .contains(&object["kind"].as_str().unwrap_or(""));
        if !cluster_scoped {
            assert_eq!(
                object["metadata"]["namespace"], "registry-rewriter",
                "{}",
                object["metadata"]["name"]
            );
        }
    }
    check_invariants(&objects);
}

fn check_invariants(objects: &[Value]) {
    let webhook_configuration: MutatingWebhookConfiguration = typed(find(
        objects,
        "MutatingWebhookConfiguration",
        "registry-rewriter",
    ));
    let deployment: Deployment = typed(find(objects, "Deployment", "registry-rewriter"));
    let service: Service = typed(find(objects, "Service", "registry-rewriter"));
    let webhooks = webhook_configuration.webhooks.expect("webhooks");
    assert_eq!(webhooks.len(), 1);
    let webhook = &webhooks[0];

    // The webhook points at our Service, port and path.
    let target = webhook
        .client_config
        .service
        .as_ref()
        .expect("a service reference");
    assert_eq!(target.name, "registry-rewriter");
    assert_eq!(target.namespace, "registry-rewriter");
    assert_eq!(
        target.path.as_deref(),
        Some(registry_rewriter::server::MUTATE_PATH)
    );
    let port = target.port.unwrap_or(443);
    let service_spec = service.spec.expect("spec");
    let service_port = service_spec
        .ports
        .expect("ports")
        .into_iter()
        .find(|p| p.port == port)
        .expect("the webhook's port is on the Service");
    let pod_spec = deployment
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec");
    let container = &pod_spec.containers[0];
    let container_ports = container.ports.as_ref().expect("ports");
    let https = match service_port.target_port.expect("targetPort") {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
            container_ports
                .iter()
                .find(|p| p.name.as_deref() == Some(&name))
                .expect("named port")
                .container_port
        }
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(number) => number,
    };
    let args = container.args.as_ref().expect("args");
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("--{name} is set"))
            .to_owned()
    };
    assert!(
        flag("listen").ends_with(&format!(":{https}")),
        "the Service targets the TLS listener"
    );
    let selector = service_spec.selector.expect("selector");
    let labels = deployment
        .spec
        .as_ref()
        .expect("spec")
        .template
        .metadata
        .as_ref()
        .expect("metadata")
        .labels
        .as_ref()
        .expect("labels");
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "the Service selects the Deployment's Pods"
    );

    // Safety of the configuration.
    assert_eq!(webhook.side_effects, "None");
    assert_eq!(webhook.admission_review_versions, ["v1"]);
    let timeout = webhook.timeout_seconds.expect("an explicit timeout");
    assert!(timeout <= 10, "timeoutSeconds {timeout}");
    let request_timeout: u64 = flag("request-timeout")
        .trim_end_matches('s')
        .parse()
        .expect("seconds");
    assert!(
        (request_timeout as i32) < timeout,
        "the server gives up before the API server does"
    );
    assert_eq!(webhook.reinvocation_policy.as_deref(), Some("IfNeeded"));
    assert!(
        webhook.failure_policy.is_some(),
        "the failure policy is chosen, not defaulted"
    );
    let namespace_selector = webhook
        .namespace_selector
        .as_ref()
        .expect("namespaceSelector");
    let expressions = namespace_selector
        .match_expressions
        .as_ref()
        .expect("expressions");
    let excluded = expressions
        .iter()
        .find(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "NotIn")
        .and_then(|e| e.values.clone())
        .expect("namespaces excluded by name");
    for namespace in ["kube-system", "kube-node-lease", "registry-rewriter"] {
        assert!(
            excluded.iter().any(|n| n == namespace),
            "{namespace} is excluded"
        );
    }
    assert!(expressions
        .iter()
        .any(|e| e.key == "registry-rewriter.k8s-lab.dev/ignore" && e.operator == "NotIn"));

    let rules = webhook.rules.as_ref().expect("rules");
    let covers = |group: &str, resource: &str, operation: &str| {
        rules.iter().any(|r| {
            r.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|x| x == group))
                && r.resources
                    .as_ref()
                    .is_some_and(|x| x.iter().any(|x| x == resource))
                && r.operations
                    .as_ref()
                    .is_some_and(|x| x.iter().any(|x| x == operation))
        })
    };
    assert!(covers("", "pods", "CREATE"));
    assert!(covers("", "pods/ephemeralcontainers", "UPDATE"));
    assert!(covers("batch", "jobs", "CREATE"));
    assert!(
        !covers("", "pods", "UPDATE"),
        "plain Pod updates must not be mutated"
    );

    // Probes point at real admin endpoints on the admin listener.
    let admin_port = flag("admin-listen")
        .rsplit(':')
        .next()
        .expect("port")
        .parse::<i32>()
        .expect("number");
    for (probe, path) in [
        (&container.readiness_probe, "/readyz"),
        (&container.liveness_probe, "/livez"),
    ] {
        let http = probe
            .as_ref()
            .expect("probe")
            .http_get
            .as_ref()
            .expect("httpGet");
        assert_eq!(http.path.as_deref(), Some(path));
        let port = match &http.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                container_ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .expect("named port")
                    .container_port
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(number) => *number,
        };
        assert_eq!(port, admin_port, "{path} is probed on the admin port");
    }

    assert_hardened(pod_spec, container);
    assert_eq!(pod_spec.automount_service_account_token, Some(false));
    assert_eq!(
        pod_spec.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert!(deployment.spec.as_ref().expect("spec").replicas >= Some(2));
    let resources = container.resources.as_ref().expect("resources");
    assert!(resources.requests.is_some() && resources.limits.is_some());

    // The TLS Secret is mounted as a directory (a subPath mount never sees rotation).
    let tls_mount = container
        .volume_mounts
        .as_ref()
        .expect("mounts")
        .iter()
        .find(|m| flag("tls-cert").starts_with(&m.mount_path))
        .expect("the certificate's directory is a mount");
    assert!(tls_mount.sub_path.is_none());

    // The mounted config is valid and holds the decision's values.
    let config_map: ConfigMap = typed(
        objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap"
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("registry-rewriter-config"))
            })
            .expect("the config ConfigMap"),
    );
    let config_text = &config_map.data.expect("data")["config.yaml"];
    let config = Config::from_yaml(config_text).expect("the shipped config is valid");
    assert_eq!(
        config.file(),
        Config::default().file(),
        "the ConfigMap holds the decision's values"
    );
}

#[test]
fn deployment_flags_exist_in_the_binary() {
    let deployment =
        std::fs::read_to_string(root().join("manifests/base/deployment.yaml")).expect("file");
    let deployment: Deployment = serde_yaml_ng::from_str(&deployment).expect("Deployment");
    let help = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let args = deployment
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers[0]
        .args
        .clone()
        .expect("args");
    // The image's entrypoint is the binary; the first argument, the command.
    assert_eq!(args[0], "serve");
    for arg in &args[1..] {
        let name = arg.split('=').next().expect("flag");
        assert!(
            name.starts_with("--") && help.contains(name),
            "serve has no flag {name}"
        );
    }
}

#[test]
fn cert_manager_overlay_injects_the_ca() {
    let Some(kubectl) = kubectl() else { return };
    let objects = render(&kubectl, &root().join("manifests/overlays/cert-manager"));
    round_trip_all(&objects);
    check_invariants(&objects);
    let webhook = find(
        &objects,
        "MutatingWebhookConfiguration",
        "registry-rewriter",
    );
    assert_eq!(
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "registry-rewriter/registry-rewriter"
    );
    let certificate = find(&objects, "Certificate", "registry-rewriter");
    assert_eq!(certificate["spec"]["secretName"], "registry-rewriter-tls");
    let names: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in [
        "registry-rewriter.registry-rewriter.svc",
        "registry-rewriter.registry-rewriter.svc.cluster.local",
    ] {
        assert!(names.contains(&name), "{name}");
    }
}

#[test]
fn certs_overlay_fills_the_ca_bundle_and_the_secret() {
    let Some(kubectl) = kubectl() else { return };
    let (objects, ca_bundle) = render_certs_overlay(&kubectl);
    round_trip_all(&objects);
    check_invariants(&objects);
    let webhook: MutatingWebhookConfiguration = typed(find(
        &objects,
        "MutatingWebhookConfiguration",
        "registry-rewriter",
    ));
    let bundle = webhook.webhooks.expect("webhooks")[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("caBundle");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(&bundle.0),
        ca_bundle
    );
    let secret: Secret = typed(find(&objects, "Secret", "registry-rewriter-tls"));
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.expect("data");
    assert!(data.contains_key("tls.crt") && data.contains_key("tls.key"));
}

#[test]
fn kaniko_example_is_a_valid_job_and_is_rewritten() {
    let path = root().join("manifests/examples/kaniko-build-job.yaml");
    let text = std::fs::read_to_string(&path).expect("file");
    let object: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let _: Job = typed(&object);
    let workload = objects::job();
    let (admitted, mutation) = objects::admit(&object, workload);
    let args = admitted
        .pointer("/spec/template/spec/containers/0/args")
        .expect("args")
        .to_string();
    assert!(args.contains("--destination=registry.k8s-lab.dev/platform/registry-rewriter:0.1.0"));
    assert!(!args.contains("skip-tls-verify"));
    assert!(mutation.changes.len() >= 4);
}

/// Every rendered kustomization and every example, checked strictly against
/// the Kubernetes schemas of 1.34, 1.35 and 1.36 (`kubernetes-validate`,
/// which bundles them). Custom resources (cert-manager's, the Prometheus
/// Operator's) have no schema there and are passed over with a warning.
#[test]
fn every_rendered_overlay_validates_against_the_kubernetes_schemas() {
    let Some(kubectl) = objects::kustomize::kubectl() else {
        return;
    };
    let Some(validate) = objects::tools::command(
        "kubernetes-validate",
        &["--version"],
        "it checks the manifests against the schemas (pip install kubernetes-validate)",
    ) else {
        return;
    };
    let root = objects::kustomize::root();
    let scratch = tempfile::tempdir().expect("dir");
    // The certs/ path, with certificates as `registry-rewriter certs` makes them.
    objects::kustomize::copy_dir(&root.join("manifests"), &scratch.path().join("manifests"));
    let certs = scratch.path().join("certs");
    common_certs().write_to(&certs).expect("certificates");
    std::fs::copy(
        root.join("certs/kustomization.yaml"),
        certs.join("kustomization.yaml"),
    )
    .expect("copy");
    let mut files = Vec::new();
    for dir in [
        "manifests",
        "manifests/base",
        "manifests/overlays/cert-manager",
        "manifests/overlays/monitoring",
        "manifests/overlays/sync-secrets",
        "manifests/overlays/guard",
        "manifests/overlays/guard-deny",
        "certs",
    ] {
        let output = Command::new(&kubectl)
            .arg("kustomize")
            .arg(scratch.path().join(dir))
            .output()
            .expect("kubectl");
        assert!(
            output.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let file = scratch
            .path()
            .join(format!("{}.yaml", dir.replace('/', "_")));
        std::fs::write(&file, &output.stdout).expect("write");
        files.push(file);
    }
    for entry in std::fs::read_dir(root.join("manifests/examples")).expect("examples") {
        files.push(entry.expect("entry").path());
    }
    for version in ["1.34.0", "1.35.0", "1.36.0"] {
        validate_strictly(&validate, version, &files);
    }
}

fn policy_output(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .arg("policy")
        .args(args)
        .output()
        .expect("registry-rewriter policy");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// `manifests/overlays/policy` installs exactly what `registry-rewriter
/// policy` prints on the default configuration (`just policy` writes it),
/// with the webhook's exclusions and nothing that runs.
#[test]
fn policy_overlay_is_what_the_binary_prints() {
    let file = root().join("manifests/overlays/policy/policy.yaml");
    let written = std::fs::read_to_string(&file).expect("policy.yaml");
    assert!(
        written == policy_output(&[]),
        "manifests/overlays/policy/policy.yaml is stale: run `just policy`"
    );
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&written)
        .map(|document| Value::deserialize(document).expect("YAML"))
        .collect();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(kinds
        .iter()
        .all(|k| ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"].contains(k)));
    let webhook: MutatingWebhookConfiguration = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("manifests/base/mutatingwebhookconfiguration.yaml"))
            .expect("webhook configuration"),
    )
    .expect("YAML");
    let webhook = &webhook.webhooks.expect("webhooks")[0];
    let selector =
        serde_json::to_value(webhook.namespace_selector.as_ref().expect("selector")).expect("JSON");
    let conditions = webhook.match_conditions.as_ref().expect("conditions");
    let skip = &conditions[0];
    // The pre-filter, as the compiled default rules write it.
    let rules = Config::default().into_rules();
    assert_eq!(conditions[1].name, policy::prefilter::NAME);
    assert_eq!(
        conditions[1].expression,
        policy::prefilter::webhook_condition(&rules),
        "manifests/base: regenerate with `registry-rewriter policy --webhook-match-condition`"
    );
    for policy in objects
        .iter()
        .filter(|o| o["kind"] == "MutatingAdmissionPolicy")
    {
        let name = &policy["metadata"]["name"];
        let spec = &policy["spec"];
        assert_eq!(
            spec["matchConstraints"]["namespaceSelector"], selector,
            "{name}"
        );
        assert_eq!(
            spec["matchConditions"][0]["expression"], skip.expression,
            "{name}"
        );
        assert_eq!(
            spec["matchConditions"][1]["name"],
            policy::prefilter::NAME,
            "{name}"
        );
        assert_eq!(spec["failurePolicy"], "Ignore", "{name}");
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "MutatingAdmissionPolicyBinding"
                    && o["spec"]["policyName"] == *name),
            "{name} has a binding"
        );
    }
    if let Some(kubectl) = kubectl() {
        let rendered = render(&kubectl, &root().join("manifests/overlays/policy"));
        assert_eq!(rendered.len(), objects.len());
    }
}

fn guard_output(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .arg("guard")
        .args(args)
        .output()
        .expect("registry-rewriter guard");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// `manifests/overlays/guard` and `guard-deny` install exactly what
/// `registry-rewriter guard` prints (`just guard` writes them): the
/// webhook's exclusions and pre-filter, a guard that never fails closed,
/// and `--deny` only on the images rule.
#[rstest]
#[case::warn("manifests/overlays/guard", &[], &["Warn", "Audit"])]
#[case::deny("manifests/overlays/guard-deny", &["--deny"], &["Deny"])]
fn guard_overlay_is_what_the_binary_prints(
    #[case] overlay: &str,
    #[case] args: &[&str],
    #[case] image_actions: &[&str],
) {
    let written =
        std::fs::read_to_string(root().join(overlay).join("guard.yaml")).expect("guard.yaml");
    assert!(
        written == guard_output(args),
        "{overlay}/guard.yaml is stale: run `just guard`"
    );
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&written)
        .map(|document| Value::deserialize(document).expect("YAML"))
        .collect();
    let policy = policy_output(&["-o", "json"]);
    let policy: Value = serde_json::from_str(&policy).expect("JSON");
    let mutating = &policy["items"][0]["spec"];
    let policies: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
        .collect();
    // Images and builds, each for Pods, `kubectl debug` and Jobs.
    assert_eq!(policies.len(), 2);
    for guard in policies {
        let name = guard["metadata"]["name"].as_str().expect("name");
        let spec = &guard["spec"];
        assert_eq!(spec["failurePolicy"], "Ignore", "{name}");
        assert_eq!(
            spec["matchConstraints"]["namespaceSelector"],
            mutating["matchConstraints"]["namespaceSelector"],
            "{name}"
        );
        assert_eq!(
            spec["matchConditions"][0], mutating["matchConditions"][0],
            "{name}"
        );
        assert_eq!(
            spec["matchConditions"][1]["name"],
            policy::prefilter::NAME,
            "{name}"
        );
        let binding = objects
            .iter()
            .find(|o| {
                o["kind"] == "ValidatingAdmissionPolicyBinding" && o["spec"]["policyName"] == name
            })
            .unwrap_or_else(|| panic!("{name} has a binding"));
        let actions: Vec<&str> = binding["spec"]["validationActions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let wanted = match name.ends_with("-images") {
            true => image_actions,
            false => &["Warn", "Audit"][..],
        };
        assert_eq!(actions, wanted, "{name}");
    }
    if let Some(kubectl) = kubectl() {
        let rendered = render(&kubectl, &root().join(overlay));
        assert_eq!(rendered.len(), objects.len());
    }
}

/// The policies against the schemas of the versions that serve them: v1 on
/// 1.36, v1beta1 on 1.34 and 1.35.
#[test]
fn policies_validate_against_the_kubernetes_schemas() {
    let Some(validate) = objects::tools::command(
        "kubernetes-validate",
        &["--version"],
        "it checks the manifests against the schemas (pip install kubernetes-validate)",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("dir");
    for (api_version, versions) in [("v1", &["1.36.0"][..]), ("v1beta1", &["1.34.0", "1.35.0"])] {
        let file = scratch.path().join(format!("policy-{api_version}.yaml"));
        std::fs::write(&file, policy_output(&["--api-version", api_version])).expect("write");
        for version in versions {
            validate_strictly(&validate, version, std::slice::from_ref(&file));
        }
    }
}

/// `manifests/overlays/sync-secrets`: the controller's Deployment hardened
/// like the webhook's, RBAC with nothing more than the README states, and
/// the base's namespace and configuration byte for byte, so the copies are
/// named after what the webhook adds.
#[test]
fn sync_secrets_overlay_is_hardened_and_least_privileged() {
    let overlay = root().join("manifests/overlays/sync-secrets");
    for file in ["namespace.yaml", "config.yaml"] {
        assert_eq!(
            std::fs::read(overlay.join(file)).expect("overlay file"),
            std::fs::read(root().join("manifests/base").join(file)).expect("base file"),
            "{file} is the base's"
        );
    }
    let Some(kubectl) = kubectl() else { return };
    let objects = render(&kubectl, &overlay);
    round_trip_all(&objects);
    let deployment: Deployment = typed(find(
        &objects,
        "Deployment",
        "registry-rewriter-sync-secrets",
    ));
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.expect("pod spec");
    let template_labels = spec
        .template
        .metadata
        .expect("metadata")
        .labels
        .expect("labels");
    assert_ne!(
        template_labels
            .get("app.kubernetes.io/name")
            .map(String::as_str),
        Some("registry-rewriter"),
        "the webhook's Service and PodDisruptionBudget must never select the controller"
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("registry-rewriter-sync-secrets")
    );
    let container = &pod.containers[0];
    assert_hardened(&pod, container);
    let args = container.args.clone().expect("args");
    assert_eq!(args[0], "sync-secrets");
    let help = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args(["sync-secrets", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in &args[1..] {
        let flag = arg.split('=').next().expect("flag");
        assert!(help.contains(flag), "{flag} is a flag of sync-secrets");
    }

    // RBAC: reads namespaces; touches Secrets only by the copy's name,
    // except create, which RBAC cannot limit by name.
    let copy_name = Config::default().rules().image_pull_secrets()[0].clone();
    for object in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        for rule in object["rules"].as_array().expect("rules") {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .expect("verbs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                !verbs.contains(&"*") && !resources.contains(&"*"),
                "no wildcards: {rule}"
            );
            assert!(
                !verbs.iter().any(|v| [
                    "update",
                    "deletecollection",
                    "escalate",
                    "bind",
                    "impersonate"
                ]
                .contains(v)),
                "{rule}"
            );
            if resources.contains(&"secrets") && verbs != ["create"] {
                assert_eq!(
                    rule["resourceNames"],
                    serde_json::json!([copy_name]),
                    "{rule}"
                );
            }
        }
    }
}

/// `kubernetes-validate --strict` of `files` against one Kubernetes version.
fn validate_strictly(validate: &Path, version: &str, files: &[std::path::PathBuf]) {
    let output = Command::new(validate)
        .args(["--strict", "--quiet", "-k", version])
        .args(files)
        .output()
        .expect("kubernetes-validate");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "Kubernetes {version}:\n{said}");
    assert!(!said.contains("ERROR"), "Kubernetes {version}:\n{said}");
}

/// Non-root, read-only root filesystem, no privilege escalation, no
/// capabilities, seccomp `RuntimeDefault`: every Deployment we ship.
fn assert_hardened(
    pod: &k8s_openapi::api::core::v1::PodSpec,
    container: &k8s_openapi::api::core::v1::Container,
) {
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    let security = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(
        security.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
}
