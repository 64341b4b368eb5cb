//! The engine alone and the whole review path (bytes in, bytes out), on the
//! inputs that matter: a pod with nothing to do, a typical Deployment pod,
//! the decision record's Kaniko Job, a 100-container pod and a 1 MiB object.
//! Allocations per review are counted by a wrapping global allocator and
//! printed before the timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, Criterion, Throughput};
use registry_rewriter::admission;
use registry_rewriter::config::Config;
use registry_rewriter::engine::{self, Scope, Workload};
use serde_json::value::RawValue;
use serde_json::{json, Value};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON")
}

/// A Deployment's pod: the app on the internal registry, two sidecars from
/// elsewhere, annotations and env as real pods carry them.
fn typical_pod() -> Value {
    let mut review = fixture("pod-create-from-deployment.json");
    let object = &mut review["request"]["object"];
    object["metadata"]["annotations"] = json!({
        "n8n.k8s-lab.dev/workflow": "deploy-webapp",
        "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "3000",
        "checksum/config": "9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
    });
    let containers = object["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    let env: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("VAR_{i}"), "value": format!("value-{i}")}))
        .collect();
    containers[0]["env"] = Value::Array(env.clone());
    containers.push(json!({"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.31.0", "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "info"], "env": env, "resources": {"requests": {"cpu": "10m"}}}));
    containers.push(
        json!({"name": "logs", "image": "cr.fluentbit.io/fluent/fluent-bit:3.1", "resources": {}}),
    );
    review
}

fn pod_with_containers(count: usize) -> Value {
    let mut review = fixture("pod-create-no-match.json");
    let containers: Vec<Value> = (0..count)
        .map(|i| {
            let image = if i % 2 == 0 {
                format!("docker-registry.registry.svc:5000/team/app-{i}:v{i}")
            } else {
                format!("quay.io/team/app-{i}:v{i}")
            };
            json!({"name": format!("c{i}"), "image": image, "env": [{"name": "I", "value": i.to_string()}], "resources": {}})
        })
        .collect();
    review["request"]["object"]["spec"]["containers"] = Value::Array(containers);
    review
}

/// About 1 MiB: a large last-applied annotation and a long env list around
/// one internal image.
fn large_pod() -> Value {
    let mut review = fixture("pod-create-from-deployment.json");
    let object = &mut review["request"]["object"];
    let big: String = "x".repeat(600 * 1024);
    object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!(big);
    let env: Vec<Value> = (0..8000)
        .map(
            |i| json!({"name": format!("VARIABLE_NUMBER_{i}"), "value": format!("some-value-{i}")}),
        )
        .collect();
    object["spec"]["containers"][0]["env"] = Value::Array(env);
    review
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "no_match_pod",
            serde_json::to_vec(&fixture("pod-create-no-match.json")).expect("JSON"),
        ),
        (
            "typical_pod",
            serde_json::to_vec(&typical_pod()).expect("JSON"),
        ),
        (
            "kaniko_job",
            serde_json::to_vec(&fixture("job-create-kaniko-build.json")).expect("JSON"),
        ),
        (
            "pod_100_containers",
            serde_json::to_vec(&pod_with_containers(100)).expect("JSON"),
        ),
        ("pod_1mib", serde_json::to_vec(&large_pod()).expect("JSON")),
    ]
}

fn workload_of(review: &Value) -> &'static Workload {
    let kind = &review["request"]["kind"];
    Workload::find(
        kind["group"].as_str().expect("group"),
        kind["kind"].as_str().expect("kind"),
    )
    .expect("known kind")
}

fn report_allocations() {
    let rules = Config::default().into_rules();
    eprintln!(
        "{:<20} {:>10} {:>14} {:>16}",
        "input", "bytes", "allocs/review", "alloc bytes/review"
    );
    for (name, body) in inputs() {
        const ROUNDS: u64 = 200;
        let _ = admission::review(&body, &rules).expect("reviews");
        let (count, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            ALLOCATED_BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..ROUNDS {
            black_box(admission::review(black_box(&body), &rules).expect("reviews"));
        }
        let count = (ALLOCATIONS.load(Ordering::Relaxed) - count) / ROUNDS;
        let bytes = (ALLOCATED_BYTES.load(Ordering::Relaxed) - bytes) / ROUNDS;
        eprintln!("{name:<20} {:>10} {count:>14} {bytes:>16}", body.len());
    }
}

fn benches(c: &mut Criterion) {
    let rules = Config::default().into_rules();
    let mut review_group = c.benchmark_group("review");
    for (name, body) in inputs() {
        review_group.throughput(Throughput::Bytes(body.len() as u64));
        review_group.bench_function(name, |b| {
            b.iter(|| admission::review(black_box(&body), &rules).expect("reviews"))
        });
    }
    review_group.finish();

    let mut engine_group = c.benchmark_group("engine");
    for (name, body) in inputs() {
        let review: Value = serde_json::from_slice(&body).expect("JSON");
        let workload = workload_of(&review);
        let object = RawValue::from_string(review["request"]["object"].to_string()).expect("JSON");
        engine_group.throughput(Throughput::Bytes(object.get().len() as u64));
        engine_group.bench_function(name, |b| {
            b.iter(|| {
                engine::mutate(black_box(&object), workload, Scope::Create, &rules)
                    .expect("mutates")
            })
        });
    }
    engine_group.finish();
}

criterion_group!(review_benches, benches);

fn main() {
    report_allocations();
    review_benches();
    Criterion::default().configure_from_args().final_summary();
}
