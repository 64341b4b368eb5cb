//! The webhook's routes: `POST /mutate` hands the body to the admission
//! layer, and every other request gets a `Status` that says what to do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::body::{is_json, read_body};
use super::error_response::{json_response, method_not_allowed, not_found, status};
use super::state::AppState;
use crate::admission::{self, Outcome};
use crate::errors::Chain;

pub const MUTATE_PATH: &str = "/mutate";

/// The webhook routes. Tests drive this directly with `oneshot`.
pub fn router(state: Arc<AppState>, request_timeout: Duration) -> Router {
    let mutate = move |State(state): State<Arc<AppState>>, request: axum::extract::Request| {
        mutate(state, request, request_timeout)
    };
    Router::new()
        .route(
            MUTATE_PATH,
            post(mutate).fallback(|| async { method_not_allowed() }),
        )
        .fallback(|| async { not_found() })
        .with_state(state)
}

/// The review is CPU work with no await in it, so the request timeout only
/// needs to cover reading the body (hyper's header read timeout covers the
/// headers). A timer here rather than a middleware layer: a layer boxes the
/// service and its future on every request.
async fn mutate(
    state: Arc<AppState>,
    request: axum::extract::Request,
    request_timeout: Duration,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !is_json(headers) {
        record_bad_request(&state);
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
        );
    }
    let read = tokio::time::timeout(
        request_timeout,
        read_body(body, headers, state.max_body_bytes),
    );
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(response)) => {
            record_bad_request(&state);
            return response;
        }
        Err(_) => {
            record_bad_request(&state);
            return status(
                StatusCode::REQUEST_TIMEOUT,
                "Timeout",
                "the request body was not received in time",
            );
        }
    };

    let started = Instant::now();
    match admission::review(&bytes, &state.rules) {
        Ok(reviewed) => {
            let elapsed = started.elapsed();
            let summary = &reviewed.summary;
            state.metrics.record_review(
                summary.kind,
                summary.operation,
                summary.outcome.as_str(),
                summary.changes.iter().map(|change| change.as_str()),
                summary.leftovers.iter().map(|reason| reason.as_str()),
                Some(elapsed),
            );
            tracing::info!(
                uid = &*summary.uid,
                kind = summary.kind,
                operation = summary.operation,
                namespace = &*summary.namespace,
                name = &*summary.name,
                dry_run = summary.dry_run,
                outcome = summary.outcome.as_str(),
                changes = summary.changes.len(),
                leftovers = summary.leftovers.len(),
                duration_us = elapsed.as_micros() as u64,
                "admission reviewed"
            );
            json_response(StatusCode::OK, reviewed.body)
        }
        Err(e) => {
            record_bad_request(&state);
            let message = Chain(&e).to_string();
            tracing::warn!(error = message, "malformed AdmissionReview");
            status(StatusCode::BAD_REQUEST, "BadRequest", &message)
        }
    }
}

fn record_bad_request(state: &AppState) {
    let outcome = Outcome::BadRequest.as_str();
    state
        .metrics
        .record_review("unknown", "unknown", outcome, [], [], None);
}
