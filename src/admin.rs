//! The admin port every long-running command serves: plain HTTP on its own
//! port, never the admission path. `/livez` answers while the process runs;
//! `/readyz` and `/metrics` ask the caller's [`Report`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Content type of the OpenMetrics text format that Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a command tells its admin port.
pub trait Report: Send + Sync + 'static {
    /// Ready, or why not (the body of the 503).
    fn ready(&self) -> Result<(), &'static str>;
    /// The metrics, in the OpenMetrics text format.
    fn metrics(&self) -> String;
}

pub fn router<R: Report>(report: Arc<R>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics::<R>))
        .with_state(report)
}

/// The admin server running on its own task.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub fn spawn<R: Report>(listener: TcpListener, report: Arc<R>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = axum::serve(listener, router(report)).with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Running { stop, task }
}

impl Running {
    /// Stops serving and waits for open admin requests to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn readyz<R: Report>(State(report): State<Arc<R>>) -> Response {
    match report.ready() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics<R: Report>(State(report): State<Arc<R>>) -> Response {
    let mut response = report.metrics().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
