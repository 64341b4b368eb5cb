//! Faults and load, bounded in count and time, on loopback only. The
//! figures (requests sent and failed, latencies, RSS) are printed; run with
//! `cargo test --test live faults -- --nocapture` to see them.

use crate::live_server;
use crate::objects;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use live_server::Process;
use objects::fixture_bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    let server = live_server::start().await;
    let client = server.client();
    let body = Bytes::from(fixture_bytes("pod-create-from-deployment.json"));
    let started = Instant::now();
    // Every connection is opened (TLS and all) before any request is sent.
    let connections = futures_join((0..1000).map(|_| {
        let client = client.clone();
        async move { client.http1().await }
    }))
    .await;
    let opened = started.elapsed();
    let answered = futures_join(connections.into_iter().map(|mut connection| {
        let body = body.clone();
        async move { connection.post(body).await.map(|r| r.status) }
    }))
    .await;
    let ok = answered
        .iter()
        .filter(|r| matches!(r, Ok(StatusCode::OK)))
        .count();
    println!(
        "1,000 concurrent connections: opened in {opened:?}; {ok} of 1000 answered 200 in {:?}",
        started.elapsed()
    );
    assert_eq!(ok, 1000);
}

async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// SIGTERM while clients keep sending: every request that reached the server
/// (its TLS handshake done and the request written) is answered, and the
/// process exits 0. A connection refused after the listener closed was never
/// in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drops_nothing_in_flight() {
    let mut process = Process::start(
        &["--shutdown-delay", "1s", "--shutdown-grace-period", "10s"],
        "warn,registry_rewriter::server=info",
    );
    let client = process.client();
    let body = Bytes::from(fixture_bytes("job-create-kaniko-build.json"));
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, answered, dropped, refused) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, body, stop) = (client.clone(), body.clone(), stop.clone());
            let (sent, answered, dropped, refused) = (sent.clone(), answered.clone(), dropped.clone(), refused.clone());
            let latencies = latencies.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // One request per connection: no idle keep-alive connection
                    // can be closed under a request that is being sent.
                    let Ok(mut stream) = client.connect().await else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let head = format!(
                        "POST /mutate HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        live_server::SERVICE_DNS,
                        body.len()
                    );
                    let started = Instant::now();
                    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&body).await.is_err() {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    let mut response = Vec::new();
                    let _ = stream.read_to_end(&mut response).await;
                    if response.starts_with(b"HTTP/1.1 200") {
                        answered.fetch_add(1, Ordering::Relaxed);
                        latencies.lock().expect("lock").push(started.elapsed());
                    } else {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = sent.load(Ordering::Relaxed);
    let signalled = Instant::now();
    process.terminate();
    let exit = tokio::task::spawn_blocking(move || {
        let status = process.child.wait().expect("wait");
        (status, process)
    });
    let (status, _process) = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("the process exits within the grace period")
        .expect("joined");
    let stopped_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("lock"));
    latencies.sort();
    let (sent, answered, dropped, refused) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
        dropped.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    println!(
        "SIGTERM under load: {sent} requests sent ({} after the signal), {answered} answered 200, {dropped} dropped in flight, \
         {refused} connections refused after the listener closed; exit {status} {stopped_after:?} after the signal; \
         latency p50 {:?}, p99 {:?}, max {:?}",
        sent - before,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    assert!(status.success(), "exits 0 after draining: {status}");
    assert!(
        sent > before,
        "requests kept arriving during the shutdown delay"
    );
    assert_eq!(dropped, 0, "no request in flight is dropped");
    assert_eq!(answered, sent);
}

/// Memory stays flat over a long run of good and bad requests, measured as
/// the server's RSS after a warm-up and at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_a_long_mixed_run() {
    let process = Process::start(&[], "warn,registry_rewriter::server=info");
    let client = process.client();
    let good = Bytes::from(fixture_bytes("job-create-kaniko-build.json"));
    let mut wrong_type: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("pod-create-from-deployment.json")).expect("JSON");
    wrong_type["request"]["object"]["spec"]["containers"] = serde_json::json!(5);
    let inputs: Vec<Bytes> = vec![
        good.clone(),
        Bytes::from(fixture_bytes("pod-create-from-deployment.json")),
        Bytes::from(fixture_bytes("pod-create-no-match.json")),
        Bytes::from_static(
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
        ),
        Bytes::from_static(b"not json"),
        Bytes::from(serde_json::to_vec(&wrong_type).expect("JSON")),
    ];
    let run = |rounds: usize| {
        let inputs = inputs.clone();
        let client = client.clone();
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|worker| {
                    let (inputs, client) = (inputs.clone(), client.clone());
                    tokio::spawn(async move {
                        let mut connection = client.http1().await;
                        let mut failures = 0;
                        for i in 0..rounds {
                            let body = inputs[(i + worker) % inputs.len()].clone();
                            if connection.post(body).await.is_err() {
                                failures += 1;
                                connection = client.http1().await;
                            }
                        }
                        failures
                    })
                })
                .collect();
            let mut failures = 0;
            for task in tasks {
                failures += task.await.expect("task");
            }
            failures
        }
    };
    assert_eq!(run(500).await, 0, "warm-up");
    let before = process.rss_kib();
    let started = Instant::now();
    assert_eq!(run(4000).await, 0, "every request is answered");
    let after = process.rss_kib();
    println!(
        "long mixed run: 32,000 requests (half malformed) in {:?}; RSS {before} KiB after warm-up, {after} KiB after",
        started.elapsed()
    );
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let (status, _) = support_admin_get(process.admin, "/readyz").await;
    assert_eq!(status, 200);
}

async fn support_admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(admin).await.expect("admin");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}
