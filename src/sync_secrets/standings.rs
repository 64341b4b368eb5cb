//! Where each namespace stands after its last reconcile, the metrics of it,
//! and what the admin port reports from them.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::plan::DOCKER_CONFIG_JSON;
use crate::admin::Report;

/// Where a namespace stands after its last reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    InSync,
    /// A Secret of the copy's name that we did not make.
    Conflict,
    /// No usable source: whatever copy is there is kept.
    SourceMissing,
    /// The last reconcile failed; it is retried.
    Failed,
    /// Not selected (or being deleted): nothing of ours is there.
    NotSelected,
}

#[derive(Debug)]
struct Entry {
    standing: Standing,
    reconciled_at: Instant,
    /// The foreign Secret (uid, resourceVersion) already reported.
    reported: Option<(Option<String>, Option<String>)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Shared by the reconciler and the admin port.
pub struct Standings {
    started: Instant,
    entries: Mutex<HashMap<String, Entry>>,
    registry: Registry,
    copies: Family<StateLabels, Gauge>,
    conflicts: Gauge,
    source_present: Gauge,
    since_full_sync: Gauge<f64, AtomicU64>,
    pub reconcile_errors: Counter,
    pub writes: Counter,
}

impl Standings {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("registry_rewriter_sync");
        let copies = Family::<StateLabels, Gauge>::default();
        registry.register(
            "copies",
            "Selected namespaces whose copy is in sync, or out of sync (conflict, no source, failed)",
            copies.clone(),
        );
        let conflicts = Gauge::default();
        registry.register(
            "conflicts",
            "Namespaces with a Secret of the copy's name that registry-rewriter did not create",
            conflicts.clone(),
        );
        let source_present = Gauge::default();
        registry.register(
            "source_present",
            "1 while the source Secret exists with type kubernetes.io/dockerconfigjson",
            source_present.clone(),
        );
        let since_full_sync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "seconds_since_full_sync",
            "Seconds since every namespace was last reconciled",
            since_full_sync.clone(),
        );
        let reconcile_errors = Counter::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried",
            reconcile_errors.clone(),
        );
        let writes = Counter::default();
        registry.register(
            "writes",
            "Copies created, updated or removed",
            writes.clone(),
        );
        Standings {
            started: Instant::now(),
            entries: Mutex::new(HashMap::new()),
            registry,
            copies,
            conflicts,
            source_present,
            since_full_sync,
            reconcile_errors,
            writes,
        }
    }

    pub fn record(&self, namespace: &str, standing: Standing) {
        let mut entries = self.entries.lock().expect("status lock");
        let entry = entries.entry(namespace.to_owned()).or_insert(Entry {
            standing,
            reconciled_at: Instant::now(),
            reported: None,
        });
        entry.standing = standing;
        entry.reconciled_at = Instant::now();
        if standing != Standing::Conflict {
            entry.reported = None;
        }
    }

    /// Whether this foreign Secret is new to us: each version is reported once.
    pub fn first_report(
        &self,
        namespace: &str,
        uid: Option<String>,
        version: Option<String>,
    ) -> bool {
        let mut entries = self.entries.lock().expect("status lock");
        let entry = entries.entry(namespace.to_owned()).or_insert(Entry {
            standing: Standing::Conflict,
            reconciled_at: Instant::now(),
            reported: None,
        });
        let key = Some((uid, version));
        let first = entry.reported != key;
        entry.reported = key;
        first
    }
}

impl Default for Standings {
    fn default() -> Self {
        Standings::new()
    }
}

/// What the admin port reads: the standings and the stores.
#[derive(Clone)]
pub struct SyncReport {
    pub standings: Arc<Standings>,
    pub namespaces: Store<Namespace>,
    pub source: Store<Secret>,
    pub source_ref: ObjectRef<Secret>,
}

impl SyncReport {
    /// Every namespace there is has been reconciled at least once.
    fn synced(&self) -> (bool, f64) {
        let namespaces = self.namespaces.state();
        if namespaces.is_empty() {
            // The namespace store has not listed yet (a cluster has at least `default`).
            return (false, self.standings.started.elapsed().as_secs_f64());
        }
        let entries = self.standings.entries.lock().expect("status lock");
        let mut oldest: Option<Instant> = None;
        for namespace in namespaces {
            match entries.get(&namespace.name_any()) {
                Some(entry) => {
                    oldest =
                        Some(oldest.map_or(entry.reconciled_at, |o| o.min(entry.reconciled_at)))
                }
                None => return (false, self.standings.started.elapsed().as_secs_f64()),
            }
        }
        (true, oldest.map_or(0.0, |o| o.elapsed().as_secs_f64()))
    }

    fn encode(&self) -> String {
        let status = &self.standings;
        let (_, age) = self.synced();
        status.since_full_sync.set(age);
        let source_present = self
            .source
            .get(&self.source_ref)
            .is_some_and(|s| s.type_.as_deref() == Some(DOCKER_CONFIG_JSON));
        status.source_present.set(i64::from(source_present));
        let (mut in_sync, mut out_of_sync, mut conflicts) = (0, 0, 0);
        for entry in status.entries.lock().expect("status lock").values() {
            match entry.standing {
                Standing::InSync => in_sync += 1,
                Standing::NotSelected => {}
                Standing::Conflict => {
                    conflicts += 1;
                    out_of_sync += 1;
                }
                Standing::SourceMissing | Standing::Failed => out_of_sync += 1,
            }
        }
        status
            .copies
            .get_or_create(&StateLabels { state: "in_sync" })
            .set(in_sync);
        status
            .copies
            .get_or_create(&StateLabels {
                state: "out_of_sync",
            })
            .set(out_of_sync);
        status.conflicts.set(conflicts);
        let mut text = String::new();
        encode(&mut text, &status.registry).expect("metrics encode into a String");
        text
    }
}

/// Ready after the first full reconcile of every namespace.
impl Report for SyncReport {
    fn ready(&self) -> Result<(), &'static str> {
        match self.synced() {
            (true, _) => Ok(()),
            (false, _) => Err("first sync in progress"),
        }
    }

    fn metrics(&self) -> String {
        self.encode()
    }
}
