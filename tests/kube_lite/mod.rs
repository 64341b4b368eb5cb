//! A real API server for tests: kube-lite (k8s.io/apiserver over etcd, with
//! the real admission chain), started in a scratch directory and stopped
//! when the test ends, however it ends. kube-lite comes from `KUBE_LITE`
//! or beside the checkout; under CI it must be there.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::objects;
use crate::objects::kustomize::{kubectl, root};

pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("KUBE_LITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/tools/kube-lite/kube-lite"));
    objects::tools::file(path, "a real API server for these tests (set KUBE_LITE)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// A child process that is stopped when the test ends, however it ends.
pub struct Running(pub Child);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }

    /// SIGKILL, then wait: a crash.
    pub fn crash(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub struct Cluster {
    binary: PathBuf,
    data: PathBuf,
    port: u16,
    /// The same token across restarts, so that clients keep working.
    token: String,
    extra: Vec<String>,
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
    server: Option<Running>,
}

impl Cluster {
    /// Starts kube-lite in `dir` on a port of its own; `extra` are more flags.
    pub fn start(binary: &Path, dir: &Path, extra: &[String]) -> Self {
        let mut cluster = Cluster {
            binary: binary.to_owned(),
            data: dir.join("kube-lite"),
            port: free_port(),
            token: format!("token-{}", free_port()),
            extra: extra.to_vec(),
            kubectl: kubectl().expect("kubectl"),
            kubeconfig: dir.join("kube-lite/kubeconfig"),
            server: None,
        };
        cluster.boot();
        cluster
    }

    fn boot(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let server = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--secure-port", &self.port.to_string()])
            .args(["--token", &self.token])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kube-lite starts");
        self.server = Some(Running(server));
        let started = Instant::now();
        while !self.kubeconfig.is_file() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kube-lite ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The same server, as the user of another kubeconfig (not stopped
    /// when dropped: the original owns the server).
    pub fn client(&self, kubeconfig: &Path) -> Cluster {
        Cluster {
            binary: self.binary.clone(),
            data: self.data.clone(),
            port: self.port,
            token: self.token.clone(),
            extra: self.extra.clone(),
            kubectl: self.kubectl.clone(),
            kubeconfig: kubeconfig.to_owned(),
            server: None,
        }
    }

    /// Kills the API server (`resume` starts it again on the same data):
    /// a graceful stop would wait for its clients' watches to end.
    pub fn pause(&mut self) {
        if let Some(server) = self.server.take() {
            server.crash();
        }
    }

    pub fn resume(&mut self) {
        self.boot();
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl, requiring success; returns stdout and stderr.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> (String, String) {
        let output = self.run(args, stdin);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "kubectl {args:?}: {stderr}");
        (stdout, stderr)
    }

    pub fn get(&self, namespace: &str, what: &str) -> Value {
        let (stdout, _) = self.ok(&["-n", namespace, "get", what, "-o", "json"], None);
        serde_json::from_str(&stdout).expect("JSON")
    }

    /// `kubectl get` that may find nothing.
    pub fn get_opt(&self, namespace: &str, what: &str) -> Option<Value> {
        let output = self.run(&["-n", namespace, "get", what, "-o", "json"], None);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("JSON"))
    }

    /// `kubectl apply -f -` of a multi-document YAML.
    pub fn apply(&self, yaml: &str) {
        self.ok(&["apply", "-f", "-"], Some(yaml));
    }
}

/// The webhook as the Deployment runs it, serving the pair in `certs`,
/// once its admin port answers.
pub fn serve(certs: &Path, webhook_port: u16, admin_port: u16) -> Running {
    let webhook = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args(["serve", "--shutdown-delay", "0s"])
        .args(["--listen", &format!("127.0.0.1:{webhook_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let running = Running(webhook);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the webhook starts"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` until it holds, for at most `limit`.
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}, within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
