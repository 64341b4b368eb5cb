//! The real server on loopback, called over real TLS the way the API server
//! calls it.

use crate::live_server;
use crate::objects;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use live_server::{generate, start, start_with, TlsClient, SERVICE_DNS};
use objects::{apply_response, check_fixture_outcome, fixture, fixture_bytes, FIXTURES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn every_fixture_over_tls() {
    let server = start().await;
    let client = server.client();
    let mut connection = client.http1().await;
    for name in FIXTURES {
        let request = fixture(name);
        let response = connection
            .post(fixture_bytes(name))
            .await
            .expect("response");
        assert_eq!(response.status, StatusCode::OK, "{name}");
        assert_eq!(response.headers["content-type"], "application/json");
        let review = response.json();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(
            review["response"]["uid"], request["request"]["uid"],
            "{name}: uid echoed"
        );
        let admitted = apply_response(&request, &review);
        check_fixture_outcome(name, &admitted, &review);
    }
}

#[tokio::test]
async fn dry_run_gets_the_same_patch() {
    let server = start().await;
    let client = server.client();
    let real = client
        .post(fixture_bytes("pod-create-from-deployment.json"))
        .await
        .json();
    let dry = client
        .post(fixture_bytes("pod-create-from-deployment-dry-run.json"))
        .await
        .json();
    assert_eq!(real["response"]["patch"], dry["response"]["patch"]);
    assert!(
        real["response"]["patch"].is_string(),
        "the patch is a base64 string"
    );
    assert_eq!(real["response"]["warnings"], dry["response"]["warnings"]);
}

#[tokio::test]
async fn warnings_explain_each_change() {
    let server = start().await;
    let review = server
        .client()
        .post(fixture_bytes("job-create-kaniko-build.json"))
        .await
        .json();
    let warnings: Vec<&str> = review["response"]["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("string"))
        .collect();
    assert!(warnings
        .iter()
        .all(|w| w.starts_with("registry-rewriter: ")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("--destination") && w.contains("-> registry.k8s-lab.dev/")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("removed --skip-tls-verify")));
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("--registry-map"))
            .count(),
        3
    );
}

#[tokio::test]
async fn http2_is_served() {
    let server = start().await;
    let client =
        TlsClient::with_config(server.addr, TlsClient::config(&server.ca_pems, Some(b"h2")));
    let mut sender = client.http2().await;
    for _ in 0..3 {
        let request = Request::post(format!("https://{SERVICE_DNS}/mutate"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(fixture_bytes(
                "pod-create-from-deployment.json",
            ))))
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 response");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

struct Row {
    row: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expected: StatusCode,
    message: &'static str,
}

impl Row {
    fn new(
        row: &'static str,
        method: Method,
        path: &'static str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
        expected: StatusCode,
        message: &'static str,
    ) -> Self {
        Row {
            row,
            method,
            path,
            content_type,
            body,
            expected,
            message,
        }
    }
}

/// Each row is sent on its own connection; after each, a good request on a
/// fresh connection must still succeed.
#[tokio::test]
async fn bad_input_gets_a_clear_error_and_the_server_keeps_serving() {
    let server = start().await;
    let client = server.client();
    let good = fixture_bytes("pod-create-from-deployment.json");
    let review = |request: serde_json::Value| {
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).to_string()
    };
    let mut without_uid = fixture("pod-create-from-deployment.json");
    without_uid["request"]
        .as_object_mut()
        .expect("object")
        .remove("uid");
    let mut without_object = fixture("pod-create-from-deployment.json");
    without_object["request"]
        .as_object_mut()
        .expect("object")
        .remove("object");
    let mut wrong_version = fixture("pod-create-from-deployment.json");
    wrong_version["apiVersion"] = "admission.k8s.io/v1beta1".into();

    let rows = [
        Row::new("not JSON", Method::POST, "/mutate", Some("application/json"), b"hello".to_vec(), StatusCode::BAD_REQUEST, "not a valid AdmissionReview"),
        Row::new("truncated", Method::POST, "/mutate", Some("application/json"), good[..good.len() / 2].to_vec(), StatusCode::BAD_REQUEST, "EOF"),
        Row::new("no request", Method::POST, "/mutate", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), StatusCode::BAD_REQUEST, "no request"),
        Row::new("wrong version", Method::POST, "/mutate", Some("application/json"), wrong_version.to_string().into_bytes(), StatusCode::BAD_REQUEST, "admission.k8s.io/v1beta1"),
        Row::new("missing uid", Method::POST, "/mutate", Some("application/json"), without_uid.to_string().into_bytes(), StatusCode::BAD_REQUEST, "uid"),
        Row::new("missing object", Method::POST, "/mutate", Some("application/json"), without_object.to_string().into_bytes(), StatusCode::BAD_REQUEST, "request.object is required"),
        Row::new("wrong operation type", Method::POST, "/mutate", Some("application/json"), review(serde_json::json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": 5})).into_bytes(), StatusCode::BAD_REQUEST, "operation"),
        Row::new("non-UTF-8", Method::POST, "/mutate", Some("application/json"), vec![b'{', 0xff, 0xfe, b'}'], StatusCode::BAD_REQUEST, "UTF-8"),
        Row::new("over the limit", Method::POST, "/mutate", Some("application/json"), vec![b' '; 3 * 1024 * 1024 + 1], StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit"),
        Row::new("wrong method", Method::GET, "/mutate", None, Vec::new(), StatusCode::METHOD_NOT_ALLOWED, "POST"),
        Row::new("wrong content type", Method::POST, "/mutate", Some("text/plain"), good.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        Row::new("no content type", Method::POST, "/mutate", None, good.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        Row::new("unknown path", Method::POST, "/validate", Some("application/json"), good.clone(), StatusCode::NOT_FOUND, "/mutate"),
    ];
    for Row {
        row,
        method,
        path,
        content_type,
        body,
        expected,
        message,
    } in rows
    {
        let mut connection = client.http1().await;
        let response = connection
            .send(method, path, content_type, Bytes::from(body))
            .await
            .unwrap_or_else(|e| panic!("{row}: {e}"));
        assert_eq!(response.status, expected, "{row}");
        let status = response.json();
        assert_eq!(status["kind"], "Status", "{row}");
        assert_eq!(status["code"], expected.as_u16(), "{row}");
        let text = status["message"].as_str().expect("message");
        assert!(
            text.contains(message),
            "{row}: {text:?} should mention {message:?}"
        );
        assert_eq!(
            client.post(good.clone()).await.status,
            StatusCode::OK,
            "good request after {row}"
        );
    }
    assert!(server.metric("registry_rewriter_admission_requests_total{kind=\"unknown\",operation=\"unknown\",outcome=\"bad_request\"}").await >= 11.0);
}

#[tokio::test]
async fn garbage_on_the_tls_port_is_dropped() {
    let server = start().await;
    let good = fixture_bytes("pod-create-no-match.json");
    for garbage in [
        &b"GET /mutate HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0u8; 64][..],
        &b"\x16\x03\x01\x00\x05hello"[..],
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connects");
        tcp.write_all(garbage).await.expect("writes");
        let mut buffer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buffer)).await;
        let answered_http = buffer.starts_with(b"HTTP/");
        assert!(read.is_ok(), "the server closes the connection");
        assert!(!answered_http, "no plain HTTP is served on the TLS port");
        assert_eq!(
            server.client().post(good.clone()).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn abrupt_disconnect_mid_body_does_not_disturb_others() {
    let server = start().await;
    let client = server.client();
    let mut stream = client.connect().await.expect("TLS");
    stream
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"apiVersion\":")
        .await
        .expect("writes");
    drop(stream);
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn two_hundred_concurrent_clients() {
    let server = start().await;
    let client = server.client();
    let body = Bytes::from(fixture_bytes("job-create-kaniko-build.json"));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move { client.post(body).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    let mutated = "registry_rewriter_admission_requests_total{kind=\"Job\",operation=\"CREATE\",outcome=\"mutated\"}";
    assert_eq!(server.metric(mutated).await, 200.0);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_one_to_close() {
    let server = start_with(|options| options.max_connections = 2).await;
    let client = server.client();
    let body = Bytes::from(fixture_bytes("pod-create-no-match.json"));
    let mut first = client.http1().await;
    let mut second = client.http1().await;
    for connection in [&mut first, &mut second] {
        let response = connection.post(body.clone()).await.expect("served");
        assert_eq!(response.status, StatusCode::OK);
    }
    assert_eq!(
        server.metric("registry_rewriter_open_connections ").await,
        2.0
    );

    // The kernel completes the TCP handshake; the server does not take
    // the connection up while both slots are held.
    let third = post_that_waits(&client, &body, "the third connection waits for a free slot").await;

    drop(first);
    assert_eq!(third.await.expect("task"), StatusCode::OK);
    let again = second.post(body).await.expect("still served");
    assert_eq!(again.status, StatusCode::OK);
    // The closed ones are counted out: only the second stays open.
    wait_for_metric(&server, "registry_rewriter_open_connections ", 1.0).await;
}

/// Posts `body` on a new connection, checks that no answer comes for a
/// while, and hands back the request still in flight. A server that keeps
/// its limit never answers here, so the bound on the wait cannot make this
/// fail.
async fn post_that_waits(
    client: &TlsClient,
    body: &Bytes,
    what: &str,
) -> tokio::task::JoinHandle<StatusCode> {
    let mut pending = tokio::spawn({
        let (client, body) = (client.clone(), body.clone());
        async move { client.post(body).await.status }
    });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
    assert!(early.is_err(), "{what}");
    pending
}

/// Waits until a gauge reads `value`.
async fn wait_for_metric(server: &live_server::TestServer, line_prefix: &str, value: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.metric(line_prefix).await != value {
        assert!(
            std::time::Instant::now() < deadline,
            "{line_prefix} never reached {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn handshakes_beyond_the_limit_wait_their_turn() {
    let server = start_with(|options| {
        options.max_concurrent_handshakes = 1;
        options.tls_handshake_timeout = Duration::from_secs(600);
    })
    .await;
    let client = server.client();
    let body = Bytes::from(fixture_bytes("pod-create-no-match.json"));
    // The start of a TLS record header, and then nothing: this client
    // holds the only turn.
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    wait_for_metric(
        &server,
        "registry_rewriter_tls_handshakes_in_progress ",
        1.0,
    )
    .await;

    let waiting = post_that_waits(&client, &body, "the second handshake waits for its turn").await;

    drop(stalled);
    assert_eq!(waiting.await.expect("task"), StatusCode::OK);
    wait_for_metric(
        &server,
        "registry_rewriter_tls_handshakes_in_progress ",
        0.0,
    )
    .await;
}

#[tokio::test]
async fn idle_connections_take_no_handshake_turn() {
    let server = start_with(|options| {
        options.max_concurrent_handshakes = 1;
        options.tls_handshake_timeout = Duration::from_secs(600);
    })
    .await;
    let idle: Vec<TcpStream> = open_idle(3, server.addr).await;
    wait_for_metric(&server, "registry_rewriter_open_connections ", 3.0).await;
    // Were the idle ones holding the turn, this would wait ten minutes.
    let served = tokio::time::timeout(
        Duration::from_secs(60),
        server
            .client()
            .post(fixture_bytes("pod-create-no-match.json")),
    )
    .await
    .expect("served while idle connections are open");
    assert_eq!(served.status, StatusCode::OK);
    drop(idle);
}

/// Plain TCP connections that never send a byte.
async fn open_idle(count: usize, addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(TcpStream::connect(addr).await.expect("connect"));
    }
    streams
}

/// The certificate a new handshake gets. A fresh client each time: a
/// resumed session would not carry the certificate again.
async fn served_certificate(server: &live_server::TestServer) -> Vec<u8> {
    let stream = server.client().connect().await.expect("TLS");
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .to_vec()
}

#[tokio::test]
async fn certificate_rotation_while_requests_flow() {
    let mut server = start().await;
    let rotated = generate(&["rotated.registry-rewriter.test"]);
    server.ca_pems.push(rotated.ca_pem.clone());
    let client = server.client();
    let before = served_certificate(&server).await;

    // Keep-alive traffic and new connections run through the rotation.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for reuse in [true, false, true, false] {
        let client = client.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let body = Bytes::from(fixture_bytes("pod-create-from-deployment.json"));
            let (mut sent, mut failed) = (0u32, 0u32);
            let mut latencies = Vec::new();
            let mut connection = client.http1().await;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let response = if reuse {
                    connection.post(body.clone()).await.ok()
                } else {
                    Some(client.post(body.clone()).await)
                };
                latencies.push(started.elapsed());
                sent += 1;
                if response.map(|r| r.status) != Some(StatusCode::OK) {
                    failed += 1;
                }
            }
            (sent, failed, latencies)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    rotated.write_to(server.dir.path()).expect("rotate");
    let mut after = before.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = served_certificate(&server).await;
        if after != before {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut sent, mut failed, mut latencies) = (0, 0, Vec::new());
    for worker in workers {
        let (s, f, l) = worker.await.expect("worker");
        sent += s;
        failed += f;
        latencies.extend(l);
    }
    latencies.sort();
    println!(
        "rotation under load: {sent} requests, {failed} failed; latency p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
    assert_ne!(after, before, "new connections get the new certificate");
    let (_, parsed) = x509_parser::parse_x509_certificate(&after).expect("X.509");
    let names = format!(
        "{:?}",
        parsed
            .subject_alternative_name()
            .expect("SAN")
            .expect("SAN")
            .value
    );
    assert!(names.contains("rotated.registry-rewriter.test"), "{names}");
    assert!(sent > 10, "requests flowed during rotation: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during rotation"
    );
    assert_eq!(
        server
            .metric("registry_rewriter_tls_certificate_reloads_total{result=\"success\"}")
            .await,
        1.0
    );
    let _ = server.begin_shutdown().await;
}

#[tokio::test]
async fn an_invalid_new_certificate_is_refused_and_the_old_one_kept() {
    let server = start().await;
    let client = server.client();
    let before = served_certificate(&server).await;
    let other_key = generate(&[]).key_pem;
    std::fs::write(server.dir.path().join("tls.key"), other_key)
        .expect("write a key that does not match");
    let failures = "registry_rewriter_tls_certificate_reloads_total{result=\"failure\"}";
    for _ in 0..100 {
        if server.metric(failures).await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.metric(failures).await,
        1.0,
        "reported once, not on every poll"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.metric(failures).await, 1.0);
    let after = served_certificate(&server).await;
    assert_eq!(before, after);
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let mut server = start_with(|o| o.shutdown_delay = Duration::from_millis(300)).await;
    assert_eq!(server.admin_get("/readyz").await.0, StatusCode::OK);
    let client = server.client();
    let body = fixture_bytes("pod-create-from-deployment.json");
    let mut stream = client.connect().await.expect("TLS");
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: {SERVICE_DNS}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream
        .write_all(&body[..100])
        .await
        .expect("part of the body");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;

    let stopped = server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.admin_get("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while draining"
    );
    assert_eq!(server.admin_get("/livez").await.0, StatusCode::OK);

    stream
        .write_all(&body[100..])
        .await
        .expect("rest of the body");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("response, then close");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"uid\":\"75bf25c4-4e38-470d-acf7-fd704f64696a\""));
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the server stops")
        .expect("cleanly");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn metrics_count_reviews_and_changes() {
    let server = start().await;
    let client = server.client();
    for name in [
        "pod-create-from-deployment.json",
        "pod-create-from-deployment.json",
        "pod-create-no-match.json",
        "pod-update-labels.json",
        "job-create-kaniko-build.json",
    ] {
        assert_eq!(
            client.post(fixture_bytes(name)).await.status,
            StatusCode::OK
        );
    }
    let (status, text) = server.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let value = |line: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line} missing in:\n{text}"))
    };
    assert_eq!(value("registry_rewriter_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",outcome=\"mutated\"}"), 2.0);
    assert_eq!(value("registry_rewriter_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",outcome=\"unchanged\"}"), 1.0);
    assert_eq!(value("registry_rewriter_admission_requests_total{kind=\"Pod\",operation=\"UPDATE\",outcome=\"ignored\"}"), 1.0);
    assert_eq!(value("registry_rewriter_admission_requests_total{kind=\"Job\",operation=\"CREATE\",outcome=\"mutated\"}"), 1.0);
    assert_eq!(
        value("registry_rewriter_rewrites_total{field=\"image\"}"),
        2.0
    );
    assert_eq!(
        value("registry_rewriter_rewrites_total{field=\"image_pull_secret\"}"),
        2.0
    );
    assert_eq!(
        value("registry_rewriter_rewrites_total{field=\"build_arg\"}"),
        2.0
    );
    assert_eq!(
        value("registry_rewriter_rewrites_total{field=\"build_flag_removed\"}"),
        1.0
    );
    assert_eq!(
        value("registry_rewriter_rewrites_total{field=\"registry_map\"}"),
        3.0
    );
    assert_eq!(
        value("registry_rewriter_admission_duration_seconds_count"),
        5.0
    );
    let expiry = value("registry_rewriter_tls_certificate_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as f64;
    assert!(
        expiry > now + 86_400.0 && expiry < now + 3.0 * 86_400.0,
        "two days ahead: {expiry} vs {now}"
    );
    assert!(!text.contains("dynamic-apps"), "no namespaces in labels");
}

#[tokio::test]
async fn admin_port_has_no_admission_endpoint() {
    let server = start().await;
    assert_eq!(server.admin_get("/livez").await.0, StatusCode::OK);
    assert_eq!(server.admin_get("/mutate").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_certificates_are_required_with_a_client_ca() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let client_ca = CertifiedIssuer::self_signed(
        {
            let mut p = CertificateParams::default();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        },
        KeyPair::generate().expect("key"),
    )
    .expect("client CA");
    let mut params = CertificateParams::new(vec!["kube-apiserver".to_owned()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("key");
    let client_cert = params
        .signed_by(&client_key, &client_ca)
        .expect("client certificate");

    let ca_dir = tempfile::tempdir().expect("dir");
    let ca_path = ca_dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, client_ca.pem()).expect("write");
    let server = start_with(|o| o.client_ca = Some(ca_path)).await;
    let body = fixture_bytes("pod-create-no-match.json");

    // Without a certificate: the handshake (or the first read) fails.
    let anonymous = server.client();
    let refused = match anonymous.connect().await {
        Err(_) => true,
        Ok(stream) => {
            let io = hyper_util::rt::TokioIo::new(stream);
            match hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await {
                Err(_) => true,
                Ok((mut sender, connection)) => {
                    tokio::spawn(connection);
                    let request = Request::post("/mutate")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.clone())))
                        .expect("request");
                    sender.send_request(request).await.is_err()
                }
            }
        }
    };
    assert!(refused, "a client without a certificate is refused");

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let key =
        rustls_pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).expect("key DER");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(live_server::roots(&server.ca_pems))
        .with_client_auth_cert(vec![client_cert.der().clone()], key)
        .expect("client auth");
    let authenticated = TlsClient::with_config(server.addr, config);
    assert_eq!(authenticated.post(body).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tls_1_2_is_accepted() {
    let server = start().await;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_root_certificates(live_server::roots(&server.ca_pems))
        .with_no_client_auth();
    let client = TlsClient::with_config(server.addr, config);
    let stream = client.connect().await.expect("TLS 1.2 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn start_up_fails_fast_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").expect("write");
    std::fs::write(dir.path().join("tls.key"), "not a key").expect("write");
    let files = registry_rewriter::server::tls::CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let loopback = "127.0.0.1:0".parse().expect("address");
    let options = registry_rewriter::server::ServeOptions::new(loopback, loopback, files);
    let error = registry_rewriter::server::Server::bind(
        options,
        registry_rewriter::config::Config::default().into_rules(),
    )
    .await
    .err()
    .expect("refused");
    assert!(error.to_string().contains("tls.crt"), "{error}");
}

/// A good request on a new connection is answered.
async fn assert_still_serves(client: &live_server::TlsClient) {
    assert_eq!(
        client
            .post(fixture_bytes("pod-create-no-match.json"))
            .await
            .status,
        StatusCode::OK
    );
}
