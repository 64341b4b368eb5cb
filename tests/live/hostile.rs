//! The hostile-input matrix. Each row sends one hostile input to a running
//! server over TLS, checks the observed response, and then checks that a
//! good request still succeeds on the same server. Each row is a test of its
//! own, so a failing row hides none after it; each prints its line of the
//! Markdown table the README carries
//! (`cargo test --test live hostile -- --nocapture`).

use crate::live_server;
use crate::objects;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use live_server::{start_with, TestServer, TlsClient, SERVICE_DNS};
use objects::{fixture, fixture_bytes};
use rstest::rstest;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server for one row.
struct Row {
    server: TestServer,
}

impl Row {
    async fn new() -> Self {
        let server = start_with(|o| {
            o.header_read_timeout = Duration::from_secs(1);
            o.tls_handshake_timeout = Duration::from_secs(1);
        })
        .await;
        Row { server }
    }

    /// Prints the row, after checking that the server still answers a good request.
    async fn observed(&self, input: &str, observed: String) {
        let good = self
            .server
            .client()
            .post(fixture_bytes("pod-create-from-deployment.json"))
            .await;
        assert_eq!(good.status, StatusCode::OK, "a good request after: {input}");
        assert!(
            good.json()["response"]["patch"].is_string(),
            "and it is still rewritten"
        );
        println!("| {input} | {observed} |");
    }

    /// Posts a body on a fresh connection; returns status and parsed JSON.
    async fn post(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self.server.client().post(body).await;
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }
}

fn good() -> Vec<u8> {
    fixture_bytes("pod-create-from-deployment.json")
}

fn good_text() -> String {
    String::from_utf8(good()).expect("UTF-8")
}

fn deep() -> String {
    let depth = 100_000;
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn with_object(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review = fixture("pod-create-from-deployment.json");
    change(&mut review["request"]["object"]);
    serde_json::to_vec(&review).expect("JSON")
}

fn with_request(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review = fixture("pod-create-from-deployment.json");
    change(&mut review["request"]);
    serde_json::to_vec(&review).expect("JSON")
}

fn without(field: &'static str) -> Vec<u8> {
    with_request(move |r| drop(r.as_object_mut().expect("object").remove(field)))
}

/// A message as a table cell: backticks and pipes would break the Markdown.
fn quote(message: &str) -> String {
    format!(
        "\u{201c}{}\u{201d}",
        message.replace('`', "'").replace('|', "\\|")
    )
}

fn first_warning(body: &Value) -> &str {
    body["response"]["warnings"][0].as_str().expect("a warning")
}

fn describe(status: StatusCode, body: &Value) -> String {
    if status == StatusCode::OK {
        let response = &body["response"];
        let patched = if response["patch"].is_string() {
            "patched"
        } else {
            "no patch"
        };
        let warning = response["warnings"][0]
            .as_str()
            .map(|w| format!(", warning: {}", quote(w)))
            .unwrap_or_default();
        format!("200, allowed, {patched}{warning}")
    } else {
        format!(
            "{}: {}",
            status.as_u16(),
            quote(body["message"].as_str().unwrap_or(""))
        )
    }
}

// --- Malformed JSON and deep nesting ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json() {
    let row = Row::new().await;
    let good = good();
    let (status, body) = row.post(good[..good.len() / 3].to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    row.observed("truncated JSON", describe(status, &body))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_in_a_skipped_field() {
    let row = Row::new().await;
    let text = good_text();
    let nested_in_skipped = text.replacen(
        "\"userInfo\": {",
        &format!("\"deep\": {}, \"userInfo\": {{", deep()),
        1,
    );
    assert_ne!(nested_in_skipped, text);
    let (status, body) = row.post(nested_in_skipped.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["response"]["patch"].is_string());
    row.observed(
        "100,000 levels of nesting in a field we skip",
        describe(status, &body),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_string_where_containers_should_be() {
    let row = Row::new().await;
    let (status, body) = row
        .post(with_object(|o| {
            o["spec"]["containers"] = Value::String(deep())
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["response"]["patch"].is_null());
    let warning = first_warning(&body);
    assert!(
        warning.len() < 400,
        "warnings stay short: {} bytes",
        warning.len()
    );
    row.observed(
        "a 200 kB string where `containers` should be",
        describe(status, &body),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_in_containers() {
    let row = Row::new().await;
    let nested = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"operation":"CREATE","object":{{"spec":{{"containers":{}}}}}}}}}"#,
        deep()
    );
    let (status, body) = row.post(nested.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first_warning(&body).contains("spec.containers"));
    row.observed(
        "100,000 levels of nesting in `containers`",
        describe(status, &body),
    )
    .await;
}

// --- Wrong types in every field the engine reads ---------------------------

#[rstest]
#[case::metadata_is_a_string("`metadata` is a string", |o: &mut Value| o["metadata"] = json!("x"))]
#[case::annotations_are_a_list("`metadata.annotations` is a list", |o: &mut Value| o["metadata"]["annotations"] = json!([1]))]
#[case::annotation_value_is_a_number("an annotation value is a number", |o: &mut Value| o["metadata"]["annotations"]["x"] = json!(1))]
#[case::generate_name_is_a_number("`metadata.generateName` is a number", |o: &mut Value| o["metadata"]["generateName"] = json!(7))]
#[case::spec_is_a_number("`spec` is a number", |o: &mut Value| o["spec"] = json!(5))]
#[case::containers_are_an_object("`spec.containers` is an object", |o: &mut Value| o["spec"]["containers"] = json!({}))]
#[case::container_is_a_number("a container is a number", |o: &mut Value| o["spec"]["containers"][0] = json!(5))]
#[case::name_is_a_boolean("`name` is a boolean", |o: &mut Value| o["spec"]["containers"][0]["name"] = json!(true))]
#[case::image_is_a_number("`image` is a number", |o: &mut Value| o["spec"]["containers"][0]["image"] = json!(5))]
#[case::command_is_a_string("`command` is a string", |o: &mut Value| o["spec"]["containers"][0]["command"] = json!("sh"))]
#[case::args_hold_a_number("`args` holds a number", |o: &mut Value| o["spec"]["containers"][0]["args"] = json!([1]))]
#[case::init_containers_are_a_string("`initContainers` is a string", |o: &mut Value| o["spec"]["initContainers"] = json!("x"))]
#[case::ephemeral_containers_are_a_number("`ephemeralContainers` is a number", |o: &mut Value| o["spec"]["ephemeralContainers"] = json!(1))]
#[case::pull_secrets_are_a_number("`imagePullSecrets` is a number", |o: &mut Value| o["spec"]["imagePullSecrets"] = json!(5))]
#[case::pull_secret_name_is_a_list("an `imagePullSecrets` name is a list", |o: &mut Value| o["spec"]["imagePullSecrets"] = json!([{"name": []}]))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_leave_the_object_unchanged(
    #[case] input: &str,
    #[case] change: fn(&mut Value),
) {
    let row = Row::new().await;
    let (status, body) = row.post(with_object(change)).await;
    assert_eq!(status, StatusCode::OK, "{input}: never blocks");
    assert!(
        body["response"]["patch"].is_null(),
        "{input}: nothing is patched"
    );
    let warning = body["response"]["warnings"][0].as_str().unwrap_or("");
    assert!(
        warning.contains("object left unchanged") && warning.contains("invalid type"),
        "{input}: {warning}"
    );
    row.observed(input, describe(status, &body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_template_is_a_string() {
    let row = Row::new().await;
    let mut job = fixture("job-create-kaniko-build.json");
    job["request"]["object"]["spec"]["template"] = json!("x");
    let (status, body) = row.post(serde_json::to_vec(&job).expect("JSON")).await;
    assert!(first_warning(&body).contains("spec.template"));
    row.observed(
        "a Job's `spec.template` is a string",
        describe(status, &body),
    )
    .await;
}

// --- Envelopes the server refuses ------------------------------------------

#[rstest]
#[case::uid_is_a_number("`uid` is a number", with_request(|r| r["uid"] = json!(5)))]
#[case::kind_is_a_string("`kind` is a string", with_request(|r| r["kind"] = json!("Pod")))]
#[case::operation_is_unknown("`operation` is unknown", with_request(|r| r["operation"] = json!("EXPLODE")))]
#[case::dry_run_is_a_string("`dryRun` is a string", with_request(|r| r["dryRun"] = json!("yes")))]
#[case::request_is_a_list("`request` is a list", serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []})).expect("JSON"))]
#[case::v1beta1("`apiVersion: admission.k8s.io/v1beta1`", good_text().replacen("admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1).into_bytes())]
#[case::kind_pod_at_the_top("`kind: Pod` at the top", good_text().replacen("\"AdmissionReview\"", "\"Pod\"", 1).into_bytes())]
#[case::no_uid("no `uid`", without("uid"))]
#[case::no_object_on_create("no `object` on CREATE", without("object"))]
#[case::non_utf8("a non-UTF-8 byte", { let mut body = good(); body[200] = 0xff; body })]
#[case::uid_given_twice("`uid` given twice", good_text().replacen("\"uid\":", "\"uid\": \"other\", \"uid\":", 1).into_bytes())]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelopes_are_refused(#[case] input: &str, #[case] body: Vec<u8>) {
    let row = Row::new().await;
    let (status, body) = row.post(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{input}");
    row.observed(input, describe(status, &body)).await;
}

// --- Sizes and duplicates ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_empty_containers() {
    let row = Row::new().await;
    let (status, body) = row
        .post(with_object(|o| {
            o["spec"]["containers"] = Value::Array(vec![json!({}); 200_000])
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    row.observed("200,000 empty containers (0.6 MB)", describe(status, &body))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_args_on_a_container_that_is_no_build() {
    let row = Row::new().await;
    let (status, body) = row
        .post(with_object(|o| {
            o["spec"]["containers"][0]["args"] =
                Value::Array(vec![
                    json!("--destination=docker-registry.registry:5000/a");
                    60_000
                ])
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    row.observed(
        "60,000 args on a non-Kaniko container (2.8 MB)",
        describe(status, &body),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_over_the_limit() {
    let row = Row::new().await;
    let (status, body) = row.post(vec![b' '; 3 * 1024 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    row.observed("3 MiB + 1 byte", describe(status, &body))
        .await;
}

#[rstest]
#[case::spec(
    "the object's `spec` given twice",
    "\"spec\": {",
    "\"spec\": {\"containers\": []}, \"spec\": {"
)]
#[case::image(
    "a container's `image` given twice",
    "\"image\":",
    "\"image\": \"nginx\", \"image\":"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_engine_reads_given_twice_are_left_alone(
    #[case] input: &str,
    #[case] once: &str,
    #[case] twice: &str,
) {
    let row = Row::new().await;
    let (status, body) = row
        .post(good_text().replacen(once, twice, 1).into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{input}");
    assert!(body["response"]["patch"].is_null(), "{input}");
    row.observed(input, describe(status, &body)).await;
}

// --- References crafted to escape the boundary rules -------------------------

#[rstest]
#[case::host_inside_the_path("registry host inside the path", "evil.io/docker-registry.registry:5000/app".to_owned(), false)]
#[case::host_as_a_prefix("internal host as a prefix of another", "docker-registry.registry:5000.evil.io/app".to_owned(), false)]
#[case::cyrillic_o("Cyrillic `о` in the host", "docker-registry.registry.svc.cluster.lоcal:5000/app".to_owned(), false)]
#[case::upper_case_host("upper-case host", "DOCKER-REGISTRY.REGISTRY:5000/app:v1".to_owned(), true)]
#[case::trailing_dot("trailing dot", "docker-registry.registry.:5000/app".to_owned(), false)]
#[case::at_in_the_host("`@` in the host", "user@docker-registry.registry:5000/app".to_owned(), false)]
#[case::colon_twice("`:` twice", "docker-registry.registry:5000:5000/app".to_owned(), false)]
#[case::ten_kilobytes("10 kB reference", format!("docker-registry.registry:5000/{}", "a".repeat(10_010)), false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_crafted_to_escape_the_boundary_rules(
    #[case] input: &str,
    #[case] image: String,
    #[case] rewritten: bool,
) {
    let row = Row::new().await;
    let (status, body) = row
        .post(with_object(|o| {
            o["spec"]["containers"][0]["image"] = json!(image)
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let warnings = body["response"]["warnings"].to_string();
    assert_eq!(
        warnings.contains("-> registry.k8s-lab.dev/app"),
        rewritten,
        "{input}: {warnings}"
    );
    row.observed(&format!("image: {input}"), describe(status, &body))
        .await;
}

// --- TLS and connection level ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sni() {
    let row = Row::new().await;
    // No SNI: a client that dials the IP sends none; the certificate covers it.
    let no_sni = {
        let config = TlsClient::config(&row.server.ca_pems, None);
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = TcpStream::connect(row.server.addr).await.expect("connects");
        let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        connector.connect(name, tcp).await
    };
    assert!(no_sni.is_ok(), "served without SNI");
    row.observed(
        "TLS ClientHello without SNI",
        "handshake completes; the certificate covers 127.0.0.1".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port() {
    let row = Row::new().await;
    let mut tcp = TcpStream::connect(row.server.addr).await.expect("connects");
    tcp.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{}")
        .await
        .expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .expect("closed");
    assert!(!answer.starts_with(b"HTTP/"));
    row.observed(
        "plain HTTP on the TLS port",
        "connection closed, no HTTP answer".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnects_mid_body() {
    let row = Row::new().await;
    let mut stream = row.server.client().connect().await.expect("TLS");
    stream.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiVersion\"").await.expect("writes");
    drop(stream);
    row.observed(
        "client disconnects mid-body",
        "connection dropped, nothing else affected".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris() {
    let row = Row::new().await;
    // Slowloris: headers one byte at a time, slower than the header read timeout.
    let mut stream = row.server.client().connect().await.expect("TLS");
    let headers = b"POST /mutate HTTP/1.1\r\nHost: x\r\n";
    let mut closed_early = false;
    for byte in headers {
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            closed_early = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !closed_early {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
        closed_early = read.is_ok();
    }
    assert!(
        closed_early,
        "the server closes a connection whose headers do not arrive in time"
    );
    row.observed(
        "slowloris: headers one byte per 100 ms",
        "connection closed by the header read timeout".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_that_never_completes() {
    let row = Row::new().await;
    let mut idle = TcpStream::connect(row.server.addr).await.expect("connects");
    idle.write_all(&[0x16, 0x03, 0x01])
        .await
        .expect("part of a ClientHello");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the handshake times out and the connection closes"
    );
    row.observed(
        "a TLS handshake that never completes",
        "connection closed by the handshake timeout".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_http2_streams() {
    let row = Row::new().await;
    let good = good();
    // HTTP/2: many concurrent streams on one connection.
    let h2 = TlsClient::with_config(
        row.server.addr,
        TlsClient::config(&row.server.ca_pems, Some(b"h2")),
    );
    let sender = h2.http2().await;
    let request = || {
        Request::post(format!("https://{SERVICE_DNS}/mutate"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(good.clone())))
            .expect("request")
    };
    let streams: Vec<_> = (0..2000)
        .map(|_| {
            let mut sender = sender.clone();
            let request = request();
            tokio::spawn(async move { sender.send_request(request).await.map(|r| r.status()) })
        })
        .collect();
    let mut ok = 0;
    for stream in streams {
        if let Ok(Ok(StatusCode::OK)) = stream.await {
            ok += 1;
        }
    }
    assert_eq!(ok, 2000, "every stream is served (at most 256 at a time)");
    row.observed(
        "HTTP/2: 2,000 concurrent streams on one connection",
        "all 2,000 served, 256 at a time".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset() {
    let row = Row::new().await;
    let h2 = TlsClient::with_config(
        row.server.addr,
        TlsClient::config(&row.server.ca_pems, Some(b"h2")),
    );
    let good = good();
    let request = || {
        Request::post(format!("https://{SERVICE_DNS}/mutate"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(good.clone())))
            .expect("request")
    };
    // HTTP/2 rapid reset: open streams and cancel them at once, many times.
    let mut sender = h2.http2().await;
    let mut cancelled = 0;
    for _ in 0..20_000 {
        if sender.ready().await.is_err() {
            break;
        }
        let response = sender.send_request(request());
        // Polled once so that HEADERS go out, then dropped: RST_STREAM.
        let _ = tokio::time::timeout(Duration::from_micros(1), response).await;
        cancelled += 1;
    }
    let outcome = if cancelled < 20_000 {
        format!("the server closed the connection (GOAWAY) after {cancelled} resets")
    } else {
        "all 20,000 resets absorbed".to_owned()
    };
    row.observed(
        "HTTP/2 rapid reset: 20,000 requests cancelled at once",
        outcome,
    )
    .await;
}
