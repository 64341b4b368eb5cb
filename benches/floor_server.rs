//! The floor for `benches/load.py`: the same stack as the webhook (rustls with
//! the same configuration, hyper-util's HTTP/1.1 and HTTP/2 server) that
//! reads the request body and answers with a fixed response of the same
//! size, parsing nothing. Its throughput is the most a webhook on this
//! stack could reach on this machine.
//!
//!     floor-server LISTEN CERT KEY RESPONSE_FILE

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use registry_rewriter::metrics::Metrics;
use registry_rewriter::server::tls::{self, CertFiles, CertReloader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key, response] = args.as_slice() else {
        return Err("usage: floor-server LISTEN CERT KEY RESPONSE_FILE".into());
    };
    let body = Bytes::from(std::fs::read(response)?);
    let files = CertFiles {
        cert: cert.into(),
        key: key.into(),
    };
    let reloader = CertReloader::new(files, Metrics::new())?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(reloader.resolver(), None)?));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen.as_str()).await?;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256);
        let builder = Arc::new(builder);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let builder = builder.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let _ = request.into_body().collect().await?;
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .expect("static response"),
                        )
                    }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
