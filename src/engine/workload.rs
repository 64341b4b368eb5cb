//! Where the pod spec lives, per kind. Supporting another workload kind is
//! one row here; `kinds` in the config decides which rows are enabled.

/// A kind that carries a pod spec, and the JSON path to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub group: &'static str,
    pub kind: &'static str,
    /// The resource name, for admission rules.
    pub resource: &'static str,
    pub pod_spec_path: &'static [&'static str],
}

#[rustfmt::skip]
pub const WORKLOADS: &[Workload] = &[
    Workload { group: "", kind: "Pod", resource: "pods", pod_spec_path: &["spec"] },
    Workload { group: "batch", kind: "Job", resource: "jobs", pod_spec_path: &["spec", "template", "spec"] },
    Workload { group: "batch", kind: "CronJob", resource: "cronjobs", pod_spec_path: &["spec", "jobTemplate", "spec", "template", "spec"] },
    Workload { group: "apps", kind: "Deployment", resource: "deployments", pod_spec_path: &["spec", "template", "spec"] },
    Workload { group: "apps", kind: "StatefulSet", resource: "statefulsets", pod_spec_path: &["spec", "template", "spec"] },
    Workload { group: "apps", kind: "DaemonSet", resource: "daemonsets", pod_spec_path: &["spec", "template", "spec"] },
    Workload { group: "apps", kind: "ReplicaSet", resource: "replicasets", pod_spec_path: &["spec", "template", "spec"] },
];

impl Workload {
    /// Looks a kind up by API group and kind name.
    pub fn find(group: &str, kind: &str) -> Option<&'static Workload> {
        WORKLOADS
            .iter()
            .find(|w| w.group == group && w.kind == kind)
    }

    /// Looks a kind up by `apiVersion` (`v1`, `batch/v1`) and kind name.
    pub fn from_api_version(api_version: &str, kind: &str) -> Option<&'static Workload> {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        Workload::find(group, kind)
    }
}
