//! The monitoring overlay: the ServiceMonitor finds the webhook's metrics
//! port, `promtool check rules` accepts the rules, and `promtool test rules`
//! shows each alert firing when it should and staying quiet when it should
//! not, over synthetic series, and over the series a real API server
//! reports for a Pod past the policy's CEL budget and for a guard that
//! fails to evaluate.

mod kube_lite;
mod objects;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube_lite::{eventually, text, Cluster};

use objects::kustomize::{kubectl, render, root};
use serde_json::{json, Value};

/// promtool (Debian's `prometheus` package). Under CI it must be there.
fn promtool() -> Option<PathBuf> {
    objects::tools::command(
        "promtool",
        &["--version"],
        "it tests the alerts (apt-get install prometheus)",
    )
}

fn rendered(kubectl: &Path, kind: &str) -> Value {
    render(kubectl, &root().join("manifests/overlays/monitoring"))
        .into_iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("the overlay has a {kind}"))
}

#[test]
fn the_service_monitor_scrapes_the_webhooks_metrics_port() {
    let Some(kubectl) = kubectl() else { return };
    let monitor = rendered(&kubectl, "ServiceMonitor");
    let service = render(&kubectl, &root().join("manifests/base"))
        .into_iter()
        .find(|o| o["kind"] == "Service")
        .expect("the base has a Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("labels")
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the Service carries {key}"
        );
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([service["metadata"]["namespace"]])
    );
    let port = &monitor["spec"]["endpoints"][0]["port"];
    let ports = service["spec"]["ports"].as_array().expect("ports");
    assert!(
        ports.iter().any(|p| &p["name"] == port),
        "the Service has the {port} port"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

/// One alert over some series: firing with these labels, or quiet.
struct Case {
    alert: &'static str,
    series: &'static [(&'static str, &'static str)],
    at: &'static str,
    fires_with: Option<Value>,
}

const WEBHOOK_CALLS: &str =
    "apiserver_admission_webhook_request_total{name=\"rewrite.registry-rewriter.k8s-lab.dev\"";

fn cases() -> Vec<Case> {
    let expiry = "registry_rewriter_tls_certificate_expiry_timestamp_seconds{pod=\"a\"}";
    let reloads_failed =
        "registry_rewriter_tls_certificate_reloads_total{pod=\"a\",result=\"failure\"}";
    let available = "kube_deployment_status_replicas_available{namespace=\"registry-rewriter\",deployment=\"registry-rewriter\"}";
    let mutated = "registry_rewriter_admission_requests_total{outcome=\"mutated\"}";
    let bad = "registry_rewriter_admission_requests_total{outcome=\"bad_request\"}";
    let pods_created = "apiserver_request_total{resource=\"pods\",verb=\"create\",code=\"201\"}";
    let source_present = "registry_rewriter_sync_source_present{pod=\"s\"}";
    let out_of_sync = "registry_rewriter_sync_copies{pod=\"s\",state=\"out_of_sync\"}";
    let excluded = "apiserver_admission_match_condition_exclusions_total{kind=\"webhook\",name=\"rewrite.registry-rewriter.k8s-lab.dev\",operation=\"CREATE\",type=\"admit\"}";
    let condition_errors = "apiserver_admission_match_condition_evaluation_errors_total{kind=\"webhook\",name=\"rewrite.registry-rewriter.k8s-lab.dev\",operation=\"CREATE\",type=\"admit\"}";
    let other_errors = "apiserver_admission_match_condition_evaluation_errors_total{kind=\"webhook\",name=\"other.example.com\",operation=\"CREATE\",type=\"admit\"}";
    let out_of_budget = "apiserver_mutating_admission_policy_check_total{policy=\"registry-rewriter\",policy_binding=\"registry-rewriter\",error_type=\"out_of_budget\"}";
    let policy_ok = "apiserver_mutating_admission_policy_check_total{policy=\"registry-rewriter\",policy_binding=\"registry-rewriter\",error_type=\"no_error\"}";
    let policy_invalid = "apiserver_mutating_admission_policy_check_total{policy=\"registry-rewriter\",policy_binding=\"registry-rewriter\",error_type=\"invalid_error\"}";
    let guard = |rule: &str, action: &str, error: &str| -> &'static str {
        let name = format!("registry-rewriter-guard-{rule}");
        Box::leak(
            format!("apiserver_validating_admission_policy_check_total{{policy=\"{name}\",policy_binding=\"{name}\",enforcement_action=\"{action}\",error_type=\"{error}\"}}")
                .into_boxed_str(),
        )
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let calls_ok = leak(format!("{WEBHOOK_CALLS},code=\"200\"}}"));
    let calls_failed = leak(format!("{WEBHOOK_CALLS},code=\"0\"}}"));
    let series =
        |pairs: Vec<(&'static str, &'static str)>| -> &'static [(&'static str, &'static str)] {
            Box::leak(pairs.into_boxed_slice())
        };
    vec![
        // The source gone for ten minutes; present.
        Case {
            alert: "RegistryRewriterSyncSourceMissing",
            series: series(vec![(source_present, "1x5 0x20")]),
            at: "20m",
            fires_with: Some(json!({"severity": "warning", "pod": "s"})),
        },
        Case {
            alert: "RegistryRewriterSyncSourceMissing",
            series: series(vec![(source_present, "1x30")]),
            at: "20m",
            fires_with: None,
        },
        // A conflict for half an hour; one resolved within minutes.
        Case {
            alert: "RegistryRewriterSyncOutOfSync",
            series: series(vec![(out_of_sync, "1x40")]),
            at: "30m",
            fires_with: Some(json!({"severity": "warning", "pod": "s", "state": "out_of_sync"})),
        },
        Case {
            alert: "RegistryRewriterSyncOutOfSync",
            series: series(vec![(out_of_sync, "1x5 0x35")]),
            at: "30m",
            fires_with: None,
        },
        // Ten days left: the warning, after its hour.
        Case {
            alert: "RegistryRewriterCertificateExpiresIn14Days",
            series: series(vec![(expiry, "864000x180")]),
            at: "2h",
            fires_with: Some(json!({"severity": "warning", "pod": "a"})),
        },
        Case {
            alert: "RegistryRewriterCertificateExpiresIn14Days",
            series: series(vec![(expiry, "2592000x180")]),
            at: "2h",
            fires_with: None,
        },
        // Two days left: critical; ten days: not yet.
        Case {
            alert: "RegistryRewriterCertificateExpiresIn3Days",
            series: series(vec![(expiry, "172800x60")]),
            at: "30m",
            fires_with: Some(json!({"severity": "critical", "pod": "a"})),
        },
        Case {
            alert: "RegistryRewriterCertificateExpiresIn3Days",
            series: series(vec![(expiry, "864000x60")]),
            at: "30m",
            fires_with: None,
        },
        // A refused certificate in the last 15 minutes; none at all.
        Case {
            alert: "RegistryRewriterCertificateReloadFailing",
            series: series(vec![(reloads_failed, "0x5 1x20")]),
            at: "10m",
            fires_with: Some(json!({"severity": "warning", "pod": "a", "result": "failure"})),
        },
        Case {
            alert: "RegistryRewriterCertificateReloadFailing",
            series: series(vec![(reloads_failed, "0x30")]),
            at: "20m",
            fires_with: None,
        },
        // No replica available for five minutes; two available.
        Case {
            alert: "RegistryRewriterNoReadyReplica",
            series: series(vec![(available, "0x20")]),
            at: "10m",
            fires_with: Some(
                json!({"severity": "critical", "namespace": "registry-rewriter", "deployment": "registry-rewriter"}),
            ),
        },
        Case {
            alert: "RegistryRewriterNoReadyReplica",
            series: series(vec![(available, "2x20")]),
            at: "10m",
            fires_with: None,
        },
        // One review in eleven malformed; one in a hundred and one.
        Case {
            alert: "RegistryRewriterRejectingReviews",
            series: series(vec![(mutated, "0+100x40"), (bad, "0+10x40")]),
            at: "30m",
            fires_with: Some(json!({"severity": "warning"})),
        },
        Case {
            alert: "RegistryRewriterRejectingReviews",
            series: series(vec![(mutated, "0+100x40"), (bad, "0+1x40")]),
            at: "30m",
            fires_with: None,
        },
        // The API server's calls fail one time in six; they all succeed.
        Case {
            alert: "RegistryRewriterWebhookCallsFailing",
            series: series(vec![(calls_ok, "0+100x40"), (calls_failed, "0+20x40")]),
            at: "30m",
            fires_with: Some(json!({"severity": "critical"})),
        },
        Case {
            alert: "RegistryRewriterWebhookCallsFailing",
            series: series(vec![(calls_ok, "0+100x40")]),
            at: "30m",
            fires_with: None,
        },
        // Pods created for an hour and no review at all; reviews as they are created.
        Case {
            alert: "RegistryRewriterSilentWhilePodsAreCreated",
            series: series(vec![(pods_created, "0+10x120")]),
            at: "90m",
            fires_with: Some(json!({"severity": "warning"})),
        },
        Case {
            alert: "RegistryRewriterSilentWhilePodsAreCreated",
            series: series(vec![(pods_created, "0+10x120"), (mutated, "0+10x120")]),
            at: "90m",
            fires_with: None,
        },
        // Pods that name no rule registry: the pre-filter keeps them from
        // the webhook, and the API server counts them as excluded.
        Case {
            alert: "RegistryRewriterSilentWhilePodsAreCreated",
            series: series(vec![(pods_created, "0+10x120"), (excluded, "0+10x120")]),
            at: "90m",
            fires_with: None,
        },
        // The pre-filter errors ten minutes long; it never does.
        Case {
            alert: "RegistryRewriterMatchConditionFailing",
            series: series(vec![(condition_errors, "0+5x40")]),
            at: "30m",
            fires_with: Some(
                json!({"severity": "critical", "kind": "webhook", "name": "rewrite.registry-rewriter.k8s-lab.dev"}),
            ),
        },
        Case {
            alert: "RegistryRewriterMatchConditionFailing",
            series: series(vec![(condition_errors, "0+0x40"), (other_errors, "0+5x40")]),
            at: "30m",
            fires_with: None,
        },
        // A Pod past one CEL call's cost limit (the API server counts it
        // as invalid_error), or past the whole budget; checks that all fit.
        Case {
            alert: "RegistryRewriterPolicyFailing",
            series: series(vec![(policy_invalid, "0x10 1x30"), (policy_ok, "0+10x40")]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "warning", "policy": "registry-rewriter", "error_type": "invalid_error"}),
            ),
        },
        Case {
            alert: "RegistryRewriterPolicyFailing",
            series: series(vec![(out_of_budget, "0x10 1x30")]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "warning", "policy": "registry-rewriter", "error_type": "out_of_budget"}),
            ),
        },
        Case {
            alert: "RegistryRewriterPolicyFailing",
            series: series(vec![
                (out_of_budget, "0x40"),
                (policy_invalid, "1x40"),
                (policy_ok, "0+10x40"),
            ]),
            at: "20m",
            fires_with: None,
        },
        // The webhook was down, and the guard warned about (or refused) a Pod.
        Case {
            alert: "RegistryRewriterGuardSawAnUnrewrittenImage",
            series: series(vec![(
                guard("images", "warn", "invalid_error"),
                "0x10 1x30",
            )]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "critical", "policy": "registry-rewriter-guard-images", "enforcement_action": "warn"}),
            ),
        },
        Case {
            alert: "RegistryRewriterGuardSawAnUnrewrittenImage",
            series: series(vec![(
                guard("images", "deny", "invalid_error"),
                "0x10 3x30",
            )]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "critical", "policy": "registry-rewriter-guard-images", "enforcement_action": "deny"}),
            ),
        },
        // Audit entries are the same findings again; an hour ago is past.
        Case {
            alert: "RegistryRewriterGuardSawAnUnrewrittenImage",
            series: series(vec![
                (guard("images", "audit", "invalid_error"), "0x10 1x60"),
                (guard("images", "warn", "invalid_error"), "0x5 1x60"),
            ]),
            at: "60m",
            fires_with: None,
        },
        Case {
            alert: "RegistryRewriterGuardSawAnUnmovedBuild",
            series: series(vec![(
                guard("builds", "warn", "invalid_error"),
                "0x10 2x30",
            )]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "warning", "policy": "registry-rewriter-guard-builds"}),
            ),
        },
        Case {
            alert: "RegistryRewriterGuardSawAnUnmovedBuild",
            series: series(vec![(
                guard("builds", "audit", "invalid_error"),
                "0x10 2x30",
            )]),
            at: "20m",
            fires_with: None,
        },
        // An evaluation error under Ignore is counted as "allow", whatever
        // its error_type; a violation never is.
        Case {
            alert: "RegistryRewriterGuardFailing",
            series: series(vec![(
                guard("images", "allow", "out_of_budget"),
                "0x10 1x30",
            )]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "warning", "policy": "registry-rewriter-guard-images", "error_type": "out_of_budget"}),
            ),
        },
        Case {
            alert: "RegistryRewriterGuardFailing",
            series: series(vec![(
                guard("builds", "allow", "invalid_error"),
                "0x10 1x30",
            )]),
            at: "20m",
            fires_with: Some(
                json!({"severity": "warning", "policy": "registry-rewriter-guard-builds", "error_type": "invalid_error"}),
            ),
        },
        Case {
            alert: "RegistryRewriterGuardFailing",
            series: series(vec![(
                guard("images", "warn", "invalid_error"),
                "0x10 1x30",
            )]),
            at: "20m",
            fires_with: None,
        },
    ]
}

/// The rendered PrometheusRule's `spec`, checked by `promtool check rules`,
/// in `dir` as `rules.yaml`; and its rules.
fn checked_rules(kubectl: &Path, promtool: &Path, dir: &Path) -> Vec<Value> {
    let rule = rendered(kubectl, "PrometheusRule");
    let rules_file = dir.join("rules.yaml");
    std::fs::write(
        &rules_file,
        serde_yaml_ng::to_string(&rule["spec"]).expect("YAML"),
    )
    .expect("write");
    let checked = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules_file)
        .output()
        .expect("promtool");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .clone()
}

/// `promtool test rules` over `cases`, against `rules.yaml` in `dir`.
fn assert_cases(promtool: &Path, dir: &Path, rules: &[Value], cases: &[Case]) {
    let annotations = |alert: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == alert)
            .unwrap_or_else(|| panic!("{alert} is a rule"))["annotations"]
            .clone()
    };
    let tests: Vec<Value> = cases
        .iter()
        .map(|case| {
            let expected = match &case.fires_with {
                Some(labels) => json!([{"exp_labels": labels, "exp_annotations": annotations(case.alert)}]),
                None => json!([]),
            };
            json!({
                "interval": "1m",
                "input_series": case.series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
                "alert_rule_test": [{"eval_time": case.at, "alertname": case.alert, "exp_alerts": expected}],
            })
        })
        .collect();
    let test_file = dir.join("alerts_test.yaml");
    let suite = json!({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests});
    std::fs::write(&test_file, serde_yaml_ng::to_string(&suite).expect("YAML")).expect("write");
    let tested = Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .output()
        .expect("promtool");
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
}

#[test]
fn every_alert_fires_when_it_should_and_only_then() {
    let (Some(kubectl), Some(promtool)) = (kubectl(), promtool()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let rules = checked_rules(&kubectl, &promtool, dir.path());
    let cases = cases();
    for rule in &rules {
        let alert = rule["alert"].as_str().expect("alert");
        assert!(
            cases
                .iter()
                .any(|c| c.alert == alert && c.fires_with.is_some()),
            "{alert} is tested firing"
        );
        assert!(
            cases
                .iter()
                .any(|c| c.alert == alert && c.fires_with.is_none()),
            "{alert} is tested quiet"
        );
    }
    assert_cases(&promtool, dir.path(), &rules, &cases);
}

/// On a real API server, a Pod past what one CEL call of the policy may
/// spend is admitted unchanged, and counted: that series, as the server
/// reports it, going from 0 to 1, makes `RegistryRewriterPolicyFailing`
/// fire.
#[test]
fn a_pod_past_the_policys_budget_fires_the_alert() {
    let Some(server) = RealServer::start() else {
        return;
    };
    let cluster = &server.cluster;
    let overlay = root().join("manifests/overlays/policy");
    cluster.ok(&["apply", "-k", overlay.to_str().expect("UTF-8")], None);
    cluster.ok(&["create", "namespace", "team"], None);
    let pod = |name: &str, containers: Vec<Value>| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team"},
               "spec": {"containers": containers}})
        .to_string()
    };
    let probe = pod(
        "probe",
        vec![json!({"name": "a", "image": "docker-registry.registry:5000/a:1"})],
    );
    eventually(Duration::from_secs(30), "the policy takes effect", || {
        let output = cluster.run(
            &[
                "create",
                "--dry-run=server",
                "-o",
                "jsonpath={.spec.containers[0].image}",
                "-f",
                "-",
            ],
            Some(&probe),
        );
        text(&output.stdout).starts_with("registry.k8s-lab.dev/")
    });

    // Three times the arguments the policy rewrites in one Pod.
    let args: Vec<String> = (0..150)
        .map(|i| format!("--destination=docker-registry.registry:5000/team/app-{i}:v1"))
        .collect();
    let builds: Vec<Value> = (0..100)
        .map(|i| json!({"name": format!("build-{i}"), "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": args}))
        .collect();
    let (admitted, _) = cluster.ok(
        &["create", "-o", "json", "-f", "-"],
        Some(&pod("big", builds)),
    );
    let admitted: Value = serde_json::from_str(&admitted).expect("JSON");
    assert_eq!(
        admitted["spec"]["containers"][0]["args"],
        json!(args),
        "admitted unchanged"
    );

    server.fires_on_what_it_counts("RegistryRewriterPolicyFailing", |line| {
        line.starts_with("apiserver_mutating_admission_policy_check_total{")
            && line.contains("policy=\"registry-rewriter\"")
            && !line.contains("error_type=\"no_error\"")
    });
}

/// On a real API server, a guard policy that fails to evaluate (here an
/// expression edited to read a missing key) admits the Pod, and the series
/// the server counts for it makes `RegistryRewriterGuardFailing` fire.
#[test]
fn a_guard_that_fails_to_evaluate_fires_the_alert() {
    let Some(server) = RealServer::start() else {
        return;
    };
    let cluster = &server.cluster;
    let mut guard = render(&server.kubectl, &root().join("manifests/overlays/guard"));
    for object in &mut guard {
        if object["kind"] == "ValidatingAdmissionPolicy"
            && object["metadata"]["name"] == "registry-rewriter-guard-images"
        {
            object["spec"]["validations"][0]["expression"] =
                json!("object.metadata.annotations['no-such-key'] == ''");
        }
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": guard});
    cluster.apply(&list.to_string());
    cluster.ok(&["create", "namespace", "team"], None);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team", "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "app", "image": "docker-registry.registry:5000/team/app:1"}]}})
    .to_string();
    // The builds guard warns about nothing here; the images guard errors.
    eventually(Duration::from_secs(30), "the guard takes effect", || {
        let output = cluster.run(&["create", "--dry-run=server", "-f", "-"], Some(&pod));
        let (metrics, _) = cluster.ok(&["get", "--raw", "/metrics"], None);
        output.status.success() && metrics.contains("enforcement_action=\"allow\"")
    });
    server.fires_on_what_it_counts("RegistryRewriterGuardFailing", |line| {
        line.starts_with("apiserver_validating_admission_policy_check_total{")
            && line.contains("policy=\"registry-rewriter-guard-images\"")
            && line.contains("enforcement_action=\"allow\"")
    });
}

/// kube-lite, with the tools that check the alerts against what it counts.
struct RealServer {
    // Stopped before its directory goes.
    cluster: Cluster,
    dir: tempfile::TempDir,
    kubectl: PathBuf,
    promtool: PathBuf,
}

impl RealServer {
    fn start() -> Option<Self> {
        let (kubectl, promtool, kube_lite) = (kubectl()?, promtool()?, kube_lite::binary()?);
        let dir = tempfile::tempdir().expect("dir");
        let cluster = Cluster::start(&kube_lite, dir.path(), &[]);
        Some(RealServer {
            cluster,
            dir,
            kubectl,
            promtool,
        })
    }

    /// The one series of the server's `/metrics` that `counted` picks,
    /// with its labels as the server writes them, going from 0 to 1, fires
    /// `alert` with those labels that the rule keeps.
    fn fires_on_what_it_counts(&self, alert: &'static str, counted: impl Fn(&str) -> bool) {
        let (metrics, _) = self.cluster.ok(&["get", "--raw", "/metrics"], None);
        let found: Vec<&str> = metrics
            .lines()
            .filter(|l| counted(l))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
            .collect();
        assert_eq!(found.len(), 1, "one series counted: {found:?}");
        let label = |name: &str| {
            found[0]
                .split_once(&format!("{name}=\""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_owned())
                .expect("label")
        };
        let labels = json!({"severity": "warning", "policy": label("policy"), "error_type": label("error_type")});
        let series: &'static [(&'static str, &'static str)] = Box::leak(
            vec![(
                &*Box::leak(found[0].to_owned().into_boxed_str()),
                "0x10 1x30",
            )]
            .into_boxed_slice(),
        );
        let case = Case {
            alert,
            series,
            at: "20m",
            fires_with: Some(labels),
        };
        let rules = checked_rules(&self.kubectl, &self.promtool, self.dir.path());
        assert_cases(&self.promtool, self.dir.path(), &rules, &[case]);
    }
}
