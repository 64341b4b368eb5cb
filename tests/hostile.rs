//! The hostile-input matrix. Each row sends one hostile input to a running
//! server over TLS, checks the observed response, and then checks that a
//! good request still succeeds on the same server. The rows and what was
//! observed are printed as the Markdown table the README carries
//! (`cargo test --test hostile -- --nocapture`).

mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::{fixture, fixture_bytes};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use support::{start_with, TestServer, TlsClient, SERVICE_DNS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Matrix {
    server: TestServer,
    rows: Vec<(String, String)>,
}

impl Matrix {
    async fn new() -> Self {
        let server = start_with(|o| {
            o.header_read_timeout = Duration::from_secs(1);
            o.tls_handshake_timeout = Duration::from_secs(1);
        })
        .await;
        Matrix {
            server,
            rows: Vec::new(),
        }
    }

    /// Records a row, after checking that the server still answers a good request.
    async fn row(&mut self, input: &str, observed: String) {
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
        self.rows.push((input.to_owned(), observed));
    }

    /// Posts a body on a fresh connection; returns status and parsed JSON.
    async fn post(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self.server.client().post(body).await;
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }

    fn print(&self) {
        println!("| input | observed |\n|---|---|");
        for (input, observed) in &self.rows {
            println!("| {input} | {observed} |");
        }
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_matrix() {
    let mut m = Matrix::new().await;
    let good = fixture_bytes("pod-create-from-deployment.json");

    // --- Malformed JSON and envelopes -------------------------------------
    let (status, body) = m.post(good[..good.len() / 3].to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    m.row("truncated JSON", describe(status, &body)).await;

    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let text = String::from_utf8(good.clone()).expect("UTF-8");
    let nested_in_skipped = text.replacen(
        "\"userInfo\": {",
        &format!("\"deep\": {deep}, \"userInfo\": {{"),
        1,
    );
    assert_ne!(nested_in_skipped, text);
    let (status, body) = m.post(nested_in_skipped.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["response"]["patch"].is_string());
    m.row(
        "100,000 levels of nesting in a field we skip",
        describe(status, &body),
    )
    .await;

    let (status, body) = m
        .post(with_object(|o| {
            o["spec"]["containers"] = Value::String(deep.clone())
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
    m.row(
        "a 200 kB string where `containers` should be",
        describe(status, &body),
    )
    .await;
    let nested = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"operation":"CREATE","object":{{"spec":{{"containers":{deep}}}}}}}}}"#
    );
    let (status, body) = m.post(nested.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first_warning(&body).contains("spec.containers"));
    m.row(
        "100,000 levels of nesting in `containers`",
        describe(status, &body),
    )
    .await;

    // --- Wrong types in every field the engine reads -----------------------
    type Change = Box<dyn Fn(&mut Value)>;
    let wrong_types: Vec<(&str, Change)> = vec![
        (
            "`metadata` is a string",
            Box::new(|o: &mut Value| o["metadata"] = json!("x")),
        ),
        (
            "`metadata.annotations` is a list",
            Box::new(|o: &mut Value| o["metadata"]["annotations"] = json!([1])),
        ),
        (
            "an annotation value is a number",
            Box::new(|o: &mut Value| o["metadata"]["annotations"]["x"] = json!(1)),
        ),
        (
            "`metadata.generateName` is a number",
            Box::new(|o: &mut Value| o["metadata"]["generateName"] = json!(7)),
        ),
        (
            "`spec` is a number",
            Box::new(|o: &mut Value| o["spec"] = json!(5)),
        ),
        (
            "`spec.containers` is an object",
            Box::new(|o: &mut Value| o["spec"]["containers"] = json!({})),
        ),
        (
            "a container is a number",
            Box::new(|o: &mut Value| o["spec"]["containers"][0] = json!(5)),
        ),
        (
            "`name` is a boolean",
            Box::new(|o: &mut Value| o["spec"]["containers"][0]["name"] = json!(true)),
        ),
        (
            "`image` is a number",
            Box::new(|o: &mut Value| o["spec"]["containers"][0]["image"] = json!(5)),
        ),
        (
            "`command` is a string",
            Box::new(|o: &mut Value| o["spec"]["containers"][0]["command"] = json!("sh")),
        ),
        (
            "`args` holds a number",
            Box::new(|o: &mut Value| o["spec"]["containers"][0]["args"] = json!([1])),
        ),
        (
            "`initContainers` is a string",
            Box::new(|o: &mut Value| o["spec"]["initContainers"] = json!("x")),
        ),
        (
            "`ephemeralContainers` is a number",
            Box::new(|o: &mut Value| o["spec"]["ephemeralContainers"] = json!(1)),
        ),
        (
            "`imagePullSecrets` is a number",
            Box::new(|o: &mut Value| o["spec"]["imagePullSecrets"] = json!(5)),
        ),
        (
            "an `imagePullSecrets` name is a list",
            Box::new(|o: &mut Value| o["spec"]["imagePullSecrets"] = json!([{"name": []}])),
        ),
    ];
    for (input, change) in wrong_types {
        let (status, body) = m.post(with_object(change)).await;
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
        m.row(input, describe(status, &body)).await;
    }
    let mut job = fixture("job-create-kaniko-build.json");
    job["request"]["object"]["spec"]["template"] = json!("x");
    let (status, body) = m.post(serde_json::to_vec(&job).expect("JSON")).await;
    assert!(first_warning(&body).contains("spec.template"));
    m.row(
        "a Job's `spec.template` is a string",
        describe(status, &body),
    )
    .await;

    let envelope_types: Vec<(&str, Vec<u8>)> = vec![
        ("`uid` is a number", with_request(|r| r["uid"] = json!(5))),
        ("`kind` is a string", with_request(|r| r["kind"] = json!("Pod"))),
        ("`operation` is unknown", with_request(|r| r["operation"] = json!("EXPLODE"))),
        ("`dryRun` is a string", with_request(|r| r["dryRun"] = json!("yes"))),
        ("`request` is a list", serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []})).expect("JSON")),
    ];
    for (input, body) in envelope_types {
        let (status, body) = m.post(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}");
        m.row(input, describe(status, &body)).await;
    }

    // --- Sizes, encodings, duplicates ----------------------------------------
    let (status, body) = m
        .post(with_object(|o| {
            o["spec"]["containers"] = Value::Array(vec![json!({}); 200_000])
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    m.row("200,000 empty containers (0.6 MB)", describe(status, &body))
        .await;
    let (status, body) = m
        .post(with_object(|o| {
            o["spec"]["containers"][0]["args"] =
                Value::Array(vec![
                    json!("--destination=docker-registry.registry:5000/a");
                    60_000
                ])
        }))
        .await;
    assert_eq!(status, StatusCode::OK);
    m.row(
        "60,000 args on a non-Kaniko container (2.8 MB)",
        describe(status, &body),
    )
    .await;
    let (status, body) = m.post(vec![b' '; 3 * 1024 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    m.row("3 MiB + 1 byte", describe(status, &body)).await;
    let mut non_utf8 = good.clone();
    non_utf8[200] = 0xff;
    let (status, body) = m.post(non_utf8).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    m.row("a non-UTF-8 byte", describe(status, &body)).await;
    let duplicated_uid = text.replacen("\"uid\":", "\"uid\": \"other\", \"uid\":", 1);
    let (status, body) = m.post(duplicated_uid.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    m.row("`uid` given twice", describe(status, &body)).await;
    let duplicated_spec = text.replacen(
        "\"spec\": {",
        "\"spec\": {\"containers\": []}, \"spec\": {",
        1,
    );
    let (status, body) = m.post(duplicated_spec.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["response"]["patch"].is_null());
    m.row("the object's `spec` given twice", describe(status, &body))
        .await;
    let duplicated_image = text.replacen("\"image\":", "\"image\": \"nginx\", \"image\":", 1);
    let (status, body) = m.post(duplicated_image.into_bytes()).await;
    assert!(body["response"]["patch"].is_null());
    m.row("a container's `image` given twice", describe(status, &body))
        .await;

    // --- Wrong envelopes ---------------------------------------------------------
    let wrong_version = text
        .replacen("admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1)
        .into_bytes();
    let wrong_kind = text
        .replacen("\"AdmissionReview\"", "\"Pod\"", 1)
        .into_bytes();
    let without = |field: &'static str| {
        with_request(move |r| drop(r.as_object_mut().expect("object").remove(field)))
    };
    for (input, body) in [
        ("`apiVersion: admission.k8s.io/v1beta1`", wrong_version),
        ("`kind: Pod` at the top", wrong_kind),
        ("no `uid`", without("uid")),
        ("no `object` on CREATE", without("object")),
    ] {
        let (status, response) = m.post(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}");
        m.row(input, describe(status, &response)).await;
    }

    // --- References crafted to escape the boundary rules -------------------------
    for (input, image, rewritten) in [
        (
            "registry host inside the path",
            "evil.io/docker-registry.registry:5000/app",
            false,
        ),
        (
            "internal host as a prefix of another",
            "docker-registry.registry:5000.evil.io/app",
            false,
        ),
        (
            "Cyrillic `о` in the host",
            "docker-registry.registry.svc.cluster.lоcal:5000/app",
            false,
        ),
        (
            "upper-case host",
            "DOCKER-REGISTRY.REGISTRY:5000/app:v1",
            true,
        ),
        ("trailing dot", "docker-registry.registry.:5000/app", false),
        (
            "`@` in the host",
            "user@docker-registry.registry:5000/app",
            false,
        ),
        ("`:` twice", "docker-registry.registry:5000:5000/app", false),
        (
            "10 kB reference",
            "docker-registry.registry:5000/aaaaaaaaaa",
            false,
        ),
    ] {
        let image = if input.starts_with("10 kB") {
            format!("{image}{}", "a".repeat(10_000))
        } else {
            image.to_owned()
        };
        let (status, body) = m
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
        m.row(&format!("image: {input}"), describe(status, &body))
            .await;
    }

    // --- TLS and connection level ----------------------------------------------------
    // No SNI: a client that dials the IP sends none; the certificate covers it.
    let no_sni = {
        let config = TlsClient::config(&m.server.ca_pems, None);
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = TcpStream::connect(m.server.addr).await.expect("connects");
        let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        connector.connect(name, tcp).await
    };
    assert!(no_sni.is_ok(), "served without SNI");
    m.row(
        "TLS ClientHello without SNI",
        "handshake completes; the certificate covers 127.0.0.1".into(),
    )
    .await;

    let mut tcp = TcpStream::connect(m.server.addr).await.expect("connects");
    tcp.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{}")
        .await
        .expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .expect("closed");
    assert!(!answer.starts_with(b"HTTP/"));
    m.row(
        "plain HTTP on the TLS port",
        "connection closed, no HTTP answer".into(),
    )
    .await;

    let mut stream = m.server.client().connect().await.expect("TLS");
    stream.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiVersion\"").await.expect("writes");
    drop(stream);
    m.row(
        "client disconnects mid-body",
        "connection dropped, nothing else affected".into(),
    )
    .await;

    // Slowloris: headers one byte at a time, slower than the header read timeout.
    let mut stream = m.server.client().connect().await.expect("TLS");
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
    m.row(
        "slowloris: headers one byte per 100 ms",
        "connection closed by the header read timeout".into(),
    )
    .await;

    let mut idle = TcpStream::connect(m.server.addr).await.expect("connects");
    idle.write_all(&[0x16, 0x03, 0x01])
        .await
        .expect("part of a ClientHello");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the handshake times out and the connection closes"
    );
    m.row(
        "a TLS handshake that never completes",
        "connection closed by the handshake timeout".into(),
    )
    .await;

    // HTTP/2: many concurrent streams on one connection.
    let h2 = TlsClient::with_config(
        m.server.addr,
        TlsClient::config(&m.server.ca_pems, Some(b"h2")),
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
    m.row(
        "HTTP/2: 2,000 concurrent streams on one connection",
        "all 2,000 served, 256 at a time".into(),
    )
    .await;

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
    m.row(
        "HTTP/2 rapid reset: 20,000 requests cancelled at once",
        outcome,
    )
    .await;

    m.print();
}
