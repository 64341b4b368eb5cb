//! `registry-rewriter sync-secrets` against a real API server (kube-lite:
//! k8s.io/apiserver over etcd, real watches, resourceVersions and
//! server-side apply). Each test starts its own server and runs the real
//! binary, as its Deployment would.

mod kube_lite;
mod objects;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube_lite::{eventually, free_port, Cluster, Running};
use serde_json::Value;

const COPY: &str = "registry-credentials";
const IGNORE: &str = "registry-rewriter.k8s-lab.dev/ignore";

struct Setup {
    _work: tempfile::TempDir,
    cluster: Cluster,
}

fn setup() -> Option<Setup> {
    let binary = kube_lite::binary()?;
    objects::kustomize::kubectl()?;
    let work = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(&binary, work.path(), &[]);
    cluster.ok(&["create", "namespace", "registry-rewriter"], None);
    set_source(&cluster, "first-password");
    Some(Setup {
        _work: work,
        cluster,
    })
}

/// The source Secret, with a password that tells versions apart.
fn set_source(cluster: &Cluster, password: &str) {
    put_pull_secret(cluster, "registry-rewriter", COPY, password);
}

/// A `kubernetes.io/dockerconfigjson` Secret, as `kubectl create secret
/// docker-registry` makes it, created or updated.
fn put_pull_secret(cluster: &Cluster, namespace: &str, name: &str, password: &str) {
    let (yaml, _) = cluster.ok(
        &[
            "-n",
            namespace,
            "create",
            "secret",
            "docker-registry",
            name,
            "--docker-server=registry.k8s-lab.dev",
            "--docker-username=ci",
            &format!("--docker-password={password}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        None,
    );
    cluster.apply(&yaml);
}

fn namespaces(cluster: &Cluster, names: &[String], labels: &str) {
    let documents: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n  labels: {{{labels}}}\n"
            )
        })
        .collect();
    cluster.apply(&documents.join("---\n"));
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// The controller, as its Deployment runs it, logging to a file so that
/// a failed wait can show what it said.
struct Controller {
    process: Running,
    admin: u16,
    log: tempfile::NamedTempFile,
}

impl Controller {
    fn start(cluster: &Cluster, args: &[&str]) -> Self {
        let admin = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        // A release build can be measured with REGISTRY_REWRITER_BINARY.
        let binary = std::env::var("REGISTRY_REWRITER_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_registry-rewriter").to_owned());
        let process = Command::new(binary)
            .arg("sync-secrets")
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("sync-secrets starts");
        Controller {
            process: Running(process),
            admin,
            log,
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.admin));
        let limit = Duration::from_secs(5);
        let mut stream = TcpStream::connect_timeout(&address, limit).ok()?;
        stream.set_read_timeout(Some(limit)).ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((code, body))
    }

    fn wait_ready(&self) {
        self.eventually(Duration::from_secs(60), "/readyz answers 200", || {
            self.get("/readyz").is_some_and(|(code, _)| code == 200)
        });
    }

    /// `kube_lite::eventually`, printing the controller's log if it fails.
    fn eventually(&self, limit: Duration, what: &str, check: impl FnMut() -> bool) {
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eventually(limit, what, check)
        }));
        if let Err(panic) = waited {
            eprintln!("sync-secrets logged:\n{}", self.log_text());
            std::panic::resume_unwind(panic);
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").expect("metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{body}"))
    }

    /// SIGKILL, as an OOM kill or a lost node would stop it.
    fn crash(self) {
        self.process.crash();
    }

    /// Everything it logged, once it has stopped.
    fn logs(self) -> String {
        let Controller { process, log, .. } = self;
        process.stop();
        std::fs::read_to_string(log.path()).unwrap_or_default()
    }
}

/// Every copy, by namespace.
fn copies(cluster: &Cluster) -> BTreeMap<String, Value> {
    let (stdout, _) = cluster.ok(
        &[
            "get",
            "secrets",
            "-A",
            "--field-selector",
            &format!("metadata.name={COPY}"),
            "-o",
            "json",
        ],
        None,
    );
    let list: Value = serde_json::from_str(&stdout).expect("JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            (
                s["metadata"]["namespace"]
                    .as_str()
                    .expect("namespace")
                    .to_owned(),
                s.clone(),
            )
        })
        .filter(|(namespace, _)| namespace != "registry-rewriter")
        .collect()
}

fn source(cluster: &Cluster) -> Value {
    cluster.get("registry-rewriter", &format!("secret/{COPY}"))
}

/// A copy made from the source as it is now.
fn is_current_copy(copy: &Value, source: &Value) -> bool {
    copy["data"] == source["data"]
        && copy["type"] == "kubernetes.io/dockerconfigjson"
        && copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "registry-rewriter"
        && copy["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/source"]
            == format!(
                "{}/{}",
                source["metadata"]["namespace"].as_str().expect("namespace"),
                source["metadata"]["name"].as_str().expect("name")
            )
            .as_str()
        && copy["metadata"]["annotations"]["registry-rewriter.k8s-lab.dev/source-resource-version"]
            == source["metadata"]["resourceVersion"]
}

#[test]
fn copies_follow_namespaces_and_the_source() {
    let Some(Setup { cluster, _work }) = setup() else {
        return;
    };
    let teams = names("team", 50);
    namespaces(&cluster, &teams, "");
    namespaces(
        &cluster,
        &["opted-out".to_owned()],
        &format!("{IGNORE}: \"true\""),
    );

    let controller = Controller::start(&cluster, &[]);
    controller.wait_ready();

    // The initial sync: every team, none of the excluded or ignored.
    let found = copies(&cluster);
    let source_now = source(&cluster);
    for team in &teams {
        assert!(
            is_current_copy(&found[team], &source_now),
            "{team}: {}",
            found[team]
        );
    }
    for untouched in ["kube-system", "kube-node-lease", "opted-out"] {
        assert!(!found.contains_key(untouched), "{untouched} has no copy");
    }
    assert!(controller.metric("registry_rewriter_sync_copies{state=\"in_sync\"}") >= 50.0);
    assert_eq!(
        controller.metric("registry_rewriter_sync_source_present"),
        1.0
    );

    // A new namespace gets its copy.
    namespaces(&cluster, &["newcomer".to_owned()], "");
    controller.eventually(Duration::from_secs(20), "newcomer gets a copy", || {
        cluster
            .get_opt("newcomer", &format!("secret/{COPY}"))
            .is_some()
    });

    // A rotation of the source reaches every copy.
    set_source(&cluster, "rotated-password");
    let rotated = source(&cluster);
    assert_ne!(rotated["data"], source_now["data"]);
    controller.eventually(
        Duration::from_secs(30),
        "every copy follows the rotation",
        || {
            let found = copies(&cluster);
            found.len() >= 51 && found.values().all(|c| is_current_copy(c, &rotated))
        },
    );

    // A namespace that leaves the selection loses its copy.
    cluster.ok(
        &["label", "namespace", &teams[0], &format!("{IGNORE}=true")],
        None,
    );
    controller.eventually(
        Duration::from_secs(20),
        "the opted-out namespace's copy goes",
        || {
            cluster
                .get_opt(&teams[0], &format!("secret/{COPY}"))
                .is_none()
        },
    );

    // Without a source, the copies stay (running Pods need them) and the
    // metric says so.
    let before_deletion: Vec<String> = copies(&cluster).into_keys().collect();
    assert!(!before_deletion.contains(&teams[0]));
    cluster.ok(&["-n", "registry-rewriter", "delete", "secret", COPY], None);
    controller.eventually(Duration::from_secs(20), "source_present drops to 0", || {
        controller.metric("registry_rewriter_sync_source_present") == 0.0
    });
    std::thread::sleep(Duration::from_secs(1));
    let kept = copies(&cluster);
    assert_eq!(
        kept.keys().cloned().collect::<Vec<_>>(),
        before_deletion,
        "every copy is kept"
    );
    assert!(kept.values().all(|c| is_current_copy(c, &rotated)));
    assert!(controller.metric("registry_rewriter_sync_copies{state=\"out_of_sync\"}") >= 50.0);
}

#[test]
fn a_secret_we_did_not_make_is_never_touched() {
    let Some(Setup { cluster, _work }) = setup() else {
        return;
    };
    // Made while the namespace is ignored, so the controller cannot race us.
    namespaces(
        &cluster,
        &["owned-by-team".to_owned()],
        &format!("{IGNORE}: \"true\""),
    );
    cluster.ok(
        &[
            "-n",
            "owned-by-team",
            "create",
            "secret",
            "generic",
            COPY,
            "--from-literal=token=theirs",
        ],
        None,
    );
    let controller = Controller::start(&cluster, &[]);
    controller.wait_ready();
    cluster.ok(
        &["label", "namespace", "owned-by-team", &format!("{IGNORE}-")],
        None,
    );
    let before = cluster.get("owned-by-team", &format!("secret/{COPY}"));

    controller.eventually(Duration::from_secs(20), "the conflict is counted", || {
        controller.metric("registry_rewriter_sync_conflicts") == 1.0
    });
    set_source(&cluster, "rotated-password");
    std::thread::sleep(Duration::from_secs(2));
    let after = cluster.get("owned-by-team", &format!("secret/{COPY}"));
    assert_eq!(after, before, "byte for byte, resourceVersion included");

    let (events, _) = cluster.ok(
        &["-n", "owned-by-team", "get", "events", "-o", "json"],
        None,
    );
    let events: Value = serde_json::from_str(&events).expect("JSON");
    let reported = events["items"].as_array().expect("items").iter().any(|e| {
        e["type"] == "Warning"
            && e["involvedObject"]["name"] == COPY
            && e["reason"] == "NotManagedByRegistryRewriter"
    });
    assert!(reported, "a Warning Event on the Secret: {events}");
    let logs = controller.logs();
    assert!(
        logs.contains("did not create") && logs.contains("owned-by-team"),
        "a log line: {logs}"
    );
}

#[test]
fn a_namespace_selector_narrows_the_copies() {
    let Some(Setup { cluster, _work }) = setup() else {
        return;
    };
    namespaces(&cluster, &["chosen".to_owned()], "copies: wanted");
    namespaces(&cluster, &["passed-over".to_owned()], "");
    let controller = Controller::start(&cluster, &["--namespace-selector", "copies in (wanted)"]);
    controller.wait_ready();
    let found = copies(&cluster);
    assert!(found.contains_key("chosen"));
    assert!(!found.contains_key("passed-over"));
    assert!(!found.contains_key("default"));
}

/// Killed in the middle of its first sync, the controller converges and
/// writes each copy once: a watch opened before it started sees one ADDED
/// per copy and no MODIFIED.
#[test]
fn a_restart_mid_sync_writes_each_copy_once() {
    let Some(Setup { cluster, _work }) = setup() else {
        return;
    };
    let teams = names("team", 1000);
    namespaces(&cluster, &teams, "");
    let mut watch = Command::new(&cluster.kubectl)
        .args([
            "get",
            "secrets",
            "-A",
            "--watch",
            "--output-watch-events",
            "--no-headers",
        ])
        .args([
            "-o",
            "custom-columns=TYPE:.type,NAMESPACE:.object.metadata.namespace",
        ])
        .args(["--field-selector", &format!("metadata.name={COPY}")])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let stdout = watch.stdout.take().expect("stdout");
    let events = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some((words.next()?.to_owned(), words.next()?.to_owned()))
            })
            .collect::<Vec<(String, String)>>()
    });
    std::thread::sleep(Duration::from_millis(500));

    let first = Controller::start(&cluster, &[]);
    let started = std::time::Instant::now();
    while first
        .get("/metrics")
        .and_then(|(_, body)| {
            body.lines().find_map(|l| {
                l.strip_prefix("registry_rewriter_sync_writes_total ")?
                    .parse::<f64>()
                    .ok()
            })
        })
        .is_none_or(|writes| writes < 20.0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run writes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.crash();
    let written_by_first = copies(&cluster).len();

    let second = Controller::start(&cluster, &[]);
    second.wait_ready();
    let found = copies(&cluster);
    assert!(teams.iter().all(|t| found.contains_key(t)));
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill").arg(watch.id().to_string()).status();
    let _ = watch.wait();
    let seen = events.join().expect("watch reader");
    let modified: Vec<&(String, String)> = seen.iter().filter(|(t, _)| t == "MODIFIED").collect();
    assert!(modified.is_empty(), "no copy written twice: {modified:?}");
    for team in &teams {
        let added = seen
            .iter()
            .filter(|(t, n)| t == "ADDED" && n == team)
            .count();
        assert_eq!(added, 1, "{team} created once");
    }
    assert!(
        written_by_first < teams.len(),
        "the restart came mid-sync ({written_by_first} of {})",
        teams.len()
    );
}

/// The API server goes away and comes back: the controller's watches
/// reconnect, and new namespaces and rotations are served again.
#[test]
fn it_reconnects_when_the_api_server_restarts() {
    let Some(Setup { mut cluster, _work }) = setup() else {
        return;
    };
    namespaces(&cluster, &names("team", 5), "");
    let controller = Controller::start(&cluster, &[]);
    controller.wait_ready();

    cluster.pause();
    std::thread::sleep(Duration::from_secs(3));
    cluster.resume();

    namespaces(&cluster, &["after-restart".to_owned()], "");
    set_source(&cluster, "rotated-password");
    let rotated = source(&cluster);
    controller.eventually(
        Duration::from_secs(60),
        "copies follow after the restart",
        || {
            let found = copies(&cluster);
            found.contains_key("after-restart")
                && found.values().all(|c| is_current_copy(c, &rotated))
        },
    );
    assert_eq!(controller.get("/livez").map(|(code, _)| code), Some(200));
}

/// kube-lite with RBAC on and the sync-secrets overlay applied, and a client
/// that is the controller's ServiceAccount.
struct RbacSetup {
    _work: tempfile::TempDir,
    cluster: Cluster,
    as_account: Cluster,
}

const ACCOUNT: &str = "system:serviceaccount:registry-rewriter:registry-rewriter-sync-secrets";

fn rbac_setup() -> Option<RbacSetup> {
    let binary = kube_lite::binary()?;
    objects::kustomize::kubectl()?;
    let work = tempfile::tempdir().expect("dir");
    let tokens = work.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("sa-token,{ACCOUNT},sa-uid,\"system:serviceaccounts,system:serviceaccounts:registry-rewriter,system:authenticated\"\n"),
    )
    .expect("tokens");
    let extra = [
        "--authorization-mode".to_owned(),
        "RBAC".to_owned(),
        "--token-auth-file".to_owned(),
        tokens.to_str().expect("UTF-8").to_owned(),
    ];
    let cluster = Cluster::start(&binary, work.path(), &extra);
    cluster.ok(&["apply", "-k", &overlay()], None);

    // The ServiceAccount's kubeconfig: the admin's, with the account's token.
    let mut kubeconfig: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&cluster.kubeconfig).expect("kubeconfig"))
            .expect("YAML");
    for entry in kubeconfig["users"].as_array_mut().expect("users") {
        entry["user"] = serde_json::json!({"token": "sa-token"});
    }
    let account = work.path().join("account.kubeconfig");
    std::fs::write(
        &account,
        serde_yaml_ng::to_string(&kubeconfig).expect("YAML"),
    )
    .expect("write");
    let as_account = Cluster::client(&cluster, &account);
    Some(RbacSetup {
        _work: work,
        cluster,
        as_account,
    })
}

fn overlay() -> String {
    let path = objects::kustomize::root().join("manifests/overlays/sync-secrets");
    path.to_str().expect("UTF-8").to_owned()
}

/// With RBAC on, the controller works with exactly the overlay's roles, as
/// its ServiceAccount, and cannot read other Secrets.
#[test]
fn the_overlay_roles_are_enough() {
    let Some(RbacSetup {
        cluster,
        as_account,
        _work,
    }) = rbac_setup()
    else {
        return;
    };
    set_source(&cluster, "first-password");
    namespaces(&cluster, &["team".to_owned()], "");
    cluster.ok(
        &[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "private",
            "--from-literal=k=v",
        ],
        None,
    );
    let (answer, _) = as_account.ok(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert_eq!(answer, ACCOUNT);
    let denied = as_account.run(&["-n", "team", "get", "secret", "private"], None);
    assert!(!denied.status.success(), "other Secrets are out of reach");

    let controller = Controller::start(&as_account, &[]);
    controller.wait_ready();
    assert!(copies(&cluster).contains_key("team"));
    assert_eq!(
        controller.metric("registry_rewriter_sync_reconcile_errors_total"),
        0.0
    );
}

/// A source the controller may not read yet (its Role comes after it, as
/// `kubectl apply` may order things): nothing is written until it can, and
/// then every namespace gets its copy, more than are reconciled at once
/// included.
#[test]
fn a_source_that_becomes_readable_later_reaches_every_namespace() {
    let Some(RbacSetup {
        cluster,
        as_account,
        _work,
    }) = rbac_setup()
    else {
        return;
    };
    // A source of another name, which the overlay's roles do not cover.
    namespaces(&cluster, &["vault".to_owned()], "");
    put_pull_secret(&cluster, "vault", "pull-secret", "from-the-vault");
    let teams = names("team", 40);
    namespaces(&cluster, &teams, "");

    let controller = Controller::start(
        &as_account,
        &["--source", "vault/pull-secret", "--concurrency", "4"],
    );
    controller.eventually(
        Duration::from_secs(30),
        "the denied watch is logged",
        || {
            controller
                .log_text()
                .contains("watching the source Secret; retrying")
        },
    );
    assert_eq!(controller.get("/readyz").map(|(code, _)| code), Some(503));
    assert!(
        copies(&cluster).is_empty(),
        "nothing is written without a source"
    );

    for grant in [
        "create role read-pull-secret --verb=get,list,watch --resource=secrets --resource-name=pull-secret",
        "create rolebinding read-pull-secret --role=read-pull-secret --serviceaccount=registry-rewriter:registry-rewriter-sync-secrets",
    ] {
        let mut args = vec!["-n", "vault"];
        args.extend(grant.split(' '));
        cluster.ok(&args, None);
    }
    controller.wait_ready();
    let source = cluster.get("vault", "secret/pull-secret");
    let found = copies(&cluster);
    for team in &teams {
        assert!(
            found.get(team).is_some_and(|c| is_current_copy(c, &source)),
            "{team} has its copy"
        );
    }
}

/// The API server's count of requests it served, from its metrics.
fn requests_served(cluster: &Cluster) -> f64 {
    let (text, _) = cluster.ok(&["get", "--raw", "/metrics"], None);
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scale, measured and printed, never asserted on time (docs/performance.md):
/// `cargo test --release --test sync_secrets -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run by hand, figures in docs/performance.md"]
fn scale_two_thousand_namespaces() {
    let Some(Setup { cluster, _work }) = setup() else {
        return;
    };
    let teams = names("team", 2000);
    for chunk in teams.chunks(500) {
        namespaces(&cluster, chunk, "");
    }
    let before = requests_served(&cluster);
    let started = std::time::Instant::now();
    let controller = Controller::start(&cluster, &[]);
    controller.eventually(Duration::from_secs(600), "ready", || {
        controller
            .get("/readyz")
            .is_some_and(|(code, _)| code == 200)
    });
    let first_sync = started.elapsed();
    let requests = requests_served(&cluster) - before;
    let status = std::fs::read_to_string(format!("/proc/{}/status", controller.process.id()))
        .unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    assert!(copies(&cluster).len() >= 2000);
    println!(
        "namespaces: {}; first full sync: {:.2} s; peak RSS: {peak}; API requests: {requests} ({:.2} per namespace, the test's own few included)",
        teams.len() + 4,
        first_sync.as_secs_f64(),
        requests / (teams.len() + 4) as f64
    );
}
