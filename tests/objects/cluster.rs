//! What the cluster does with an admitted object, where no test server runs
//! it: the Job controller making a Pod from the stored template, and the
//! ServiceAccount admission plugin, which runs before every webhook and
//! policy.

use serde_json::{json, Value};

/// A Job whose ServiceAccount (`builder`) carries its own pull secret: one
/// container on `image`, one on a vendor's registry.
pub fn job_beside_a_vendor_image(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {
            "serviceAccountName": "builder",
            "restartPolicy": "Never",
            "containers": [
                {"name": name, "image": image},
                {"name": "vendor", "image": "vendor.example/agent:2"}
            ]
        }}}
    })
}

/// The Pod the Job controller makes from a stored Job: the template's
/// metadata and spec, a generated name, the Job as owner
/// (k8s.io/kubernetes pkg/controller/controller_utils.go, GetPodFromTemplate).
pub fn pod_from_job(job: &Value) -> Value {
    let template = &job["spec"]["template"];
    let name = job["metadata"]["name"].as_str().expect("the Job's name");
    let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
    metadata["generateName"] = json!(format!("{name}-"));
    metadata["namespace"] = job["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = json!([{
        "apiVersion": "batch/v1", "kind": "Job", "name": name,
        "uid": job["metadata"]["uid"].as_str().unwrap_or("00000000-0000-0000-0000-000000000001"),
        "controller": true, "blockOwnerDeletion": true
    }]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

/// The ServiceAccount admission plugin's pull-secret rule: a Pod with no
/// `imagePullSecrets` gets its ServiceAccount's; a Pod with a list keeps it
/// (k8s.io/kubernetes plugin/pkg/admission/serviceaccount/admission.go).
pub fn service_account_rule(pod: &mut Value, service_account_secrets: &[&str]) {
    let has_list = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|list| !list.is_empty());
    if !has_list {
        let secrets: Vec<Value> = service_account_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        pod["spec"]["imagePullSecrets"] = Value::Array(secrets);
    }
}

/// The names in a pod spec's `imagePullSecrets`.
pub fn pull_secret_names(spec: &Value) -> Vec<String> {
    spec["imagePullSecrets"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
