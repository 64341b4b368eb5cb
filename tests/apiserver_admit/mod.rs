//! kube-apiserver's own mutating admission plugins, run through the
//! `apiserver-admit` harness: the webhook plugin against a running server,
//! the MutatingAdmissionPolicy plugin on rendered policies, or both in the
//! API server's order.
//!
//! The harness is found through `APISERVER_ADMIT`, or beside the checkout as
//! `../shared/tools/apiserver-admit/apiserver-admit`. Where it is absent (a
//! user's clone) the tests skip with a message; under CI they must run.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::live_server::TestServer;
use crate::objects;

pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("APISERVER_ADMIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/tools/apiserver-admit/apiserver-admit")
        });
    objects::tools::file(
        path,
        "kube-apiserver's admission harness runs the end-to-end tests (set APISERVER_ADMIT)",
    )
}

/// The MutatingWebhookConfiguration from the manifests, with our caBundle.
pub fn webhook_configuration(ca_pem: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/base/mutatingwebhookconfiguration.yaml");
    let text = std::fs::read_to_string(&path).expect("the manifest exists");
    let mut configuration: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    for webhook in configuration["webhooks"].as_array_mut().expect("webhooks") {
        webhook["clientConfig"]["caBundle"] = bundle.clone().into();
    }
    configuration
}

pub struct Admission {
    pub code: i32,
    pub admitted: Value,
    pub warnings: Vec<String>,
    pub stderr: String,
}

impl Admission {
    /// Errors the policy plugin recorded (failurePolicy Ignore hides them
    /// from the result, not from the harness).
    pub fn policy_errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("PolicyError:") || l.starts_with("Panic:"))
            .collect()
    }
}

#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub object: &'a Value,
    pub namespace: &'a str,
    pub namespace_labels: &'a str,
    pub operation: &'a str,
    pub old_object: Option<&'a Value>,
    pub subresource: Option<&'a str>,
    pub dry_run: bool,
}

impl<'a> Call<'a> {
    pub fn create(object: &'a Value, namespace: &'a str) -> Self {
        Call {
            object,
            namespace,
            namespace_labels: "",
            operation: "CREATE",
            old_object: None,
            subresource: None,
            dry_run: false,
        }
    }

    /// The call an AdmissionReview fixture describes.
    pub fn of_review(review: &'a Value) -> Self {
        let request = &review["request"];
        Call {
            object: &request["object"],
            namespace: request["namespace"].as_str().expect("namespace"),
            namespace_labels: "",
            operation: request["operation"].as_str().expect("operation"),
            old_object: request.get("oldObject").filter(|o| !o.is_null()),
            subresource: request.get("subResource").and_then(Value::as_str),
            dry_run: request["dryRun"].as_bool().unwrap_or(false),
        }
    }
}

pub struct Harness {
    pub binary: PathBuf,
    pub dir: tempfile::TempDir,
    /// `--service` for the webhook, once there is one.
    pub service: String,
    args: Vec<OsString>,
}

impl Harness {
    fn new(binary: PathBuf) -> Self {
        Harness {
            binary,
            dir: tempfile::tempdir().expect("dir"),
            service: String::new(),
            args: Vec::new(),
        }
    }

    /// The webhook plugin, calling `server` as the manifests configure it.
    pub fn webhook(binary: PathBuf, server: &TestServer) -> Self {
        Harness::new(binary).with_webhook(server)
    }

    /// The webhook plugin, with the manifests' configuration edited.
    pub fn new_webhook_edited(
        binary: PathBuf,
        server: &TestServer,
        edit: impl FnOnce(&mut Value),
    ) -> Self {
        Harness::new(binary).with_webhook_edited(server, edit)
    }

    /// The policy plugin, with the given policies and bindings (YAML).
    pub fn policy(binary: PathBuf, policies: &str) -> Self {
        Harness::new(binary).with_policy(policies)
    }

    pub fn with_webhook(self, server: &TestServer) -> Self {
        self.with_webhook_edited(server, |_| {})
    }

    /// The webhook plugin, with the manifests' configuration as `edit`
    /// leaves it.
    pub fn with_webhook_edited(
        mut self,
        server: &TestServer,
        edit: impl FnOnce(&mut Value),
    ) -> Self {
        let path = self.dir.path().join("mwc.json");
        let mut configuration = webhook_configuration(&server.ca_pems[0]);
        edit(&mut configuration);
        std::fs::write(&path, configuration.to_string()).expect("write");
        self.args.push("--config".into());
        self.args.push(path.into());
        self.service = format!("registry-rewriter/registry-rewriter:443={}", server.addr);
        self.args.push("--service".into());
        self.args.push(self.service.clone().into());
        self
    }

    pub fn with_policy(mut self, policies: &str) -> Self {
        let path = self
            .dir
            .path()
            .join(format!("policy-{}.yaml", self.args.len()));
        std::fs::write(&path, policies).expect("write");
        self.args.push("--policy".into());
        self.args.push(path.into());
        self
    }

    pub fn admit(&self, call: Call<'_>) -> Admission {
        let files = tempfile::tempdir_in(self.dir.path()).expect("dir");
        let object_path = files.path().join("object.json");
        std::fs::write(&object_path, call.object.to_string()).expect("write");
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .arg("--object")
            .arg(&object_path)
            .args(["--namespace", call.namespace, "--operation", call.operation])
            .arg("--quiet-audit");
        if !call.namespace_labels.is_empty() {
            command.args(["--namespace-labels", call.namespace_labels]);
        }
        if let Some(old) = call.old_object {
            let old_path = files.path().join("old.json");
            std::fs::write(&old_path, old.to_string()).expect("write");
            command.arg("--old-object").arg(old_path);
        }
        if let Some(subresource) = call.subresource {
            command.args(["--subresource", subresource]);
        }
        if call.dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().expect("the harness runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let warnings = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("Warning: "))
            .map(str::to_owned)
            .collect();
        let admitted = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        Admission {
            code: output.status.code().unwrap_or(-1),
            admitted,
            warnings,
            stderr,
        }
    }
}
