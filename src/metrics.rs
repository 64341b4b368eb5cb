//! The few metrics an operator needs. Label values come from small fixed
//! sets (kinds from our table, operations, outcomes, change kinds), never
//! from namespaces, names or images, so cardinality stays bounded. Callers
//! give the labels as `&'static str`, so this module knows no other.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    field: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rewrites: Family<FieldLabels, Counter>,
    leftovers: Family<ReasonLabels, Counter>,
    duration: Histogram,
    certificate_expiry: Gauge,
    certificate_reloads: Family<ResultLabels, Counter>,
    open_connections: Gauge,
    handshakes_in_progress: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("registry_rewriter");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "AdmissionReview requests by kind, operation and outcome",
            requests.clone(),
        );
        let rewrites = Family::<FieldLabels, Counter>::default();
        registry.register(
            "rewrites",
            "Changes made, by what was changed",
            rewrites.clone(),
        );
        let leftovers = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "leftovers",
            "Values left naming a rewrite source (each also a warning), by why",
            leftovers.clone(),
        );
        // 50 µs up to about 0.8 s.
        let duration = Histogram::new(exponential_buckets(0.00005, 2.0, 15));
        registry.register(
            "admission_duration_seconds",
            "Time to answer an AdmissionReview, from the full body to the response",
            duration.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "Expiry of the serving certificate, as a Unix timestamp",
            certificate_expiry.clone(),
        );
        let certificate_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_certificate_reloads",
            "Attempts to load a changed serving certificate, by result",
            certificate_reloads.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Webhook connections open, TLS handshakes included",
            open_connections.clone(),
        );
        let handshakes_in_progress = Gauge::default();
        registry.register(
            "tls_handshakes_in_progress",
            "TLS handshakes in progress on the webhook port",
            handshakes_in_progress.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                rewrites,
                leftovers,
                duration,
                certificate_expiry,
                certificate_reloads,
                open_connections,
                handshakes_in_progress,
            }),
        }
    }

    /// One request answered: its labels, what it changed, and how long
    /// the answer took (none for a request that was refused unread).
    pub fn record_review(
        &self,
        kind: &'static str,
        operation: &'static str,
        outcome: &'static str,
        changes: impl IntoIterator<Item = &'static str>,
        leftovers: impl IntoIterator<Item = &'static str>,
        elapsed: Option<Duration>,
    ) {
        for reason in leftovers {
            self.inner
                .leftovers
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                kind,
                operation,
                outcome,
            })
            .inc();
        for field in changes {
            self.inner
                .rewrites
                .get_or_create(&FieldLabels { field })
                .inc();
        }
        if let Some(elapsed) = elapsed {
            self.inner.duration.observe(elapsed.as_secs_f64());
        }
    }

    pub fn set_certificate_expiry(&self, not_after: OffsetDateTime) {
        self.inner
            .certificate_expiry
            .set(not_after.unix_timestamp());
    }

    pub fn certificate_reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.inner
            .certificate_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts a connection open until the guard is dropped.
    pub fn connection_opened(&self) -> InProgress {
        InProgress::counted(&self.inner.open_connections)
    }

    /// Counts a handshake in progress until the guard is dropped.
    pub fn handshake_started(&self) -> InProgress {
        InProgress::counted(&self.inner.handshakes_in_progress)
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// Raises its gauge while it lives, and lowers it when dropped.
#[must_use]
pub struct InProgress(Gauge);

impl InProgress {
    fn counted(gauge: &Gauge) -> Self {
        gauge.inc();
        InProgress(gauge.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}
