//! Rendering kustomizations with kubectl, offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// kubectl from `KUBECTL` or the PATH. Under CI it must be there; elsewhere
/// the caller skips, and this says why.
pub fn kubectl() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| "kubectl".into());
    super::tools::command(
        candidate,
        &["version", "--client"],
        "it renders the kustomizations (set KUBECTL)",
    )
}

pub fn render(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML"))
        .filter(|v: &Value| !v.is_null())
        .map(unwrap_base64)
        .collect()
}

/// Kustomize wraps long base64 values (generated Secret data, and the
/// caBundle copied from it) over several lines. The API server's decoder
/// ignores the line breaks (the end-to-end test applies such a caBundle
/// through kube-apiserver's plugin); k8s-openapi's does not, so they are
/// removed before the typed round trip.
pub fn unwrap_base64(mut object: Value) -> Value {
    let strip = |value: &mut Value| {
        if let Some(text) = value.as_str() {
            *value = Value::String(text.replace(['\n', '\r'], ""));
        }
    };
    if object["kind"] == "Secret" {
        if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
            data.values_mut().for_each(strip);
        }
    }
    if let Some(webhooks) = object.get_mut("webhooks").and_then(Value::as_array_mut) {
        for webhook in webhooks {
            if let Some(bundle) = webhook.pointer_mut("/clientConfig/caBundle") {
                strip(bundle);
            }
        }
    }
    object
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
