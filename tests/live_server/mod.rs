//! A running server and a TLS client that verifies it the way the API
//! server does: against the CA bundle, for the Service's DNS name.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use registry_rewriter::certs::{CertRequest, GeneratedCerts};
use registry_rewriter::config::Config;
use registry_rewriter::server::tls::CertFiles;
use registry_rewriter::server::{AppState, ServeOptions, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The name the API server checks for a `service` clientConfig.
pub const SERVICE_DNS: &str = "registry-rewriter.registry-rewriter.svc";

pub struct TestServer {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub ca_pems: Vec<String>,
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn generate(extra_dns: &[&str]) -> GeneratedCerts {
    GeneratedCerts::generate(&CertRequest {
        service: "registry-rewriter".into(),
        namespace: "registry-rewriter".into(),
        extra_dns: extra_dns.iter().map(|s| s.to_string()).collect(),
        extra_ips: vec![[127, 0, 0, 1].into()],
        valid_days: 2,
    })
    .expect("certificates")
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut ServeOptions)) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = generate(&[]);
    certs.write_to(dir.path()).expect("write certificates");
    let files = CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut options = ServeOptions::new(loopback, loopback, files);
    options.shutdown_delay = Duration::ZERO;
    options.shutdown_grace_period = Duration::from_secs(5);
    options.cert_reload_interval = Duration::from_millis(50);
    adjust(&mut options);
    let server = Server::bind(options, Config::default().into_rules())
        .await
        .expect("server binds");
    let (tx, rx) = oneshot::channel();
    let addr = server.local_addr();
    let admin = server.admin_addr();
    let state = server.state();
    let handle = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        admin,
        dir,
        ca_pems: vec![certs.ca_pem],
        state,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestServer {
    pub fn client(&self) -> TlsClient {
        TlsClient::new(self.addr, &self.ca_pems)
    }

    /// Starts the shutdown; the returned handle resolves when the server has stopped.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().expect("server running")
    }

    /// The reviews the server has answered, from its metrics.
    pub async fn requests_seen(&self) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("registry_rewriter_admission_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let stream = TcpStream::connect(self.admin)
            .await
            .expect("admin connects");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("admin handshake");
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = sender.send_request(request).await.expect("admin response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

#[derive(Clone)]
pub struct TlsClient {
    addr: SocketAddr,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the response is JSON")
    }
}

pub fn roots(ca_pems: &[String]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA accepted");
        }
    }
    roots
}

impl TlsClient {
    pub fn new(addr: SocketAddr, ca_pems: &[String]) -> Self {
        Self::with_config(addr, Self::config(ca_pems, None))
    }

    pub fn config(ca_pems: &[String], alpn: Option<&[u8]>) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(ca_pems))
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.unwrap_or(b"http/1.1").to_vec()];
        config
    }

    pub fn with_config(addr: SocketAddr, config: rustls::ClientConfig) -> Self {
        TlsClient {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(SERVICE_DNS).expect("name"),
        }
    }

    pub async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        self.connector.connect(self.server_name.clone(), tcp).await
    }

    /// A keep-alive HTTP/1.1 connection.
    pub async fn http1(&self) -> Http1 {
        let stream = self.connect().await.expect("TLS connects");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Http1 { sender }
    }

    /// An HTTP/2 connection (the server must have chosen h2 by ALPN).
    pub async fn http2(&self) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let stream = self.connect().await.expect("TLS connects");
        assert_eq!(
            stream.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "h2 negotiated"
        );
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        sender
    }

    /// One request on a new connection.
    pub async fn post(&self, body: impl Into<Bytes>) -> Response {
        self.http1().await.post(body).await.expect("response")
    }
}

pub struct Http1 {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Http1 {
    pub async fn post(&mut self, body: impl Into<Bytes>) -> Result<Response, hyper::Error> {
        self.send(
            Method::POST,
            "/mutate",
            Some("application/json"),
            body.into(),
        )
        .await
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response, hyper::Error> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVICE_DNS);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(body)).expect("request");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// The real binary, serving on ephemeral loopback ports.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
    /// Holds tls.crt and tls.key.
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `serve` with `extra` flags, logging at `RUST_LOG=log_level`.
    pub fn start(extra: &[&str], log_level: &str) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let certs = generate(&[]);
        certs.write_to(dir.path()).expect("certificates");
        let mut child = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(extra)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ready = loop {
            let line = lines
                .next()
                .expect("the server logs until ready")
                .expect("a line");
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "ready" {
                break event;
            }
        };
        // Keep reading the log, so the server never blocks on a full pipe
        // and tests can search it.
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut logs = sink.lock().unwrap_or_else(|e| e.into_inner());
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        Process {
            child,
            addr: ready["listen"]
                .as_str()
                .expect("listen")
                .parse()
                .expect("address"),
            admin: ready["admin"]
                .as_str()
                .expect("admin")
                .parse()
                .expect("address"),
            ca_pem: certs.ca_pem,
            dir,
            logs,
        }
    }

    pub fn client(&self) -> TlsClient {
        TlsClient::new(self.addr, std::slice::from_ref(&self.ca_pem))
    }

    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
