//! The axum Router driven in process with the fixtures, no sockets.

use crate::objects;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use objects::{apply_response, check_fixture_outcome, fixture, fixture_bytes, FIXTURES};
use registry_rewriter::config::Config;
use registry_rewriter::metrics::Metrics;
use registry_rewriter::server::{router, AppState, DEFAULT_MAX_BODY_BYTES};
use tower::ServiceExt;

fn app() -> axum::Router {
    let state = AppState::new(
        Config::default().into_rules(),
        Metrics::new(),
        DEFAULT_MAX_BODY_BYTES,
    );
    router(state, Duration::from_secs(5))
}

async fn post(body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    post_body(Body::from(body)).await
}

async fn post_body(body: Body) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/mutate")
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .expect("request");
    let response = app().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

#[tokio::test]
async fn fixtures_through_the_router() {
    for name in FIXTURES {
        let (status, review) = post(fixture_bytes(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let admitted = apply_response(&fixture(name), &review);
        check_fixture_outcome(name, &admitted, &review);
    }
}

/// A body that arrives in pieces, as HTTP/1.1 chunked encoding or several
/// HTTP/2 DATA frames deliver it.
struct Pieces(VecDeque<Bytes>);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
    }
}

#[tokio::test]
async fn a_body_in_pieces_gets_the_same_answer_as_a_whole_one() {
    for name in FIXTURES {
        let whole = fixture_bytes(name);
        let pieces: VecDeque<Bytes> = whole.chunks(700).map(Bytes::copy_from_slice).collect();
        assert!(pieces.len() > 1, "{name} is longer than one piece");
        let (whole_status, whole_review) = post(whole).await;
        let (status, review) = post_body(Body::new(Pieces(pieces))).await;
        assert_eq!(status, whole_status, "{name}");
        assert_eq!(review, whole_review, "{name}");
    }
}

#[tokio::test]
async fn object_of_the_wrong_shape_is_allowed_unchanged_with_a_warning() {
    let mut review = fixture("pod-create-from-deployment.json");
    review["request"]["object"]["spec"]["containers"][0]["image"] = 5.into();
    let (status, response) = post(review.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["response"]["allowed"], true);
    assert!(response["response"].get("patch").is_none());
    let warning = response["response"]["warnings"][0]
        .as_str()
        .expect("warning");
    assert!(
        warning.contains("spec.containers[0].image: invalid type"),
        "{warning}"
    );
}

#[tokio::test]
async fn other_kinds_and_operations_are_allowed_without_a_patch() {
    for (kind, group, operation, sub_resource) in [
        ("Deployment", "apps", "CREATE", None),
        ("Pod", "", "DELETE", None),
        ("Pod", "", "CONNECT", None),
        ("Pod", "", "UPDATE", Some("status")),
        ("Job", "batch", "UPDATE", None),
    ] {
        let mut review = fixture("pod-create-from-deployment.json");
        review["request"]["kind"] =
            serde_json::json!({"group": group, "version": "v1", "kind": kind});
        review["request"]["operation"] = operation.into();
        if let Some(sub_resource) = sub_resource {
            review["request"]["subResource"] = sub_resource.into();
        }
        let (status, response) = post(review.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            response["response"].get("patch").is_none(),
            "{kind} {operation}"
        );
        assert!(response["response"].get("patchType").is_none());
    }
}

#[test]
fn the_log_summary_names_the_object_or_its_generate_name() {
    let config = Config::default().into_rules();
    let pod = fixture_bytes("pod-create-from-deployment.json");
    let reviewed = registry_rewriter::admission::review(&pod, &config).expect("reviewed");
    assert_eq!(reviewed.summary.name, "test-webapp-6d8f7c9b5d-");
    assert_eq!(reviewed.summary.namespace, "dynamic-apps");
    assert_eq!(reviewed.summary.kind, "Pod");
    assert_eq!(reviewed.summary.operation, "CREATE");
    let job = fixture_bytes("job-create-kaniko-build.json");
    let reviewed = registry_rewriter::admission::review(&job, &config).expect("reviewed");
    assert_eq!(reviewed.summary.name, "build-test-webapp-v1");
    assert_eq!(reviewed.summary.changes.len(), 6);
}

/// The engine reads the object while the review is parsed when the request's
/// kind and operation come first (as the API server writes them), and in a
/// second step otherwise. Both must answer byte for byte alike.
#[test]
fn object_before_kind_gets_the_same_answer() {
    let config = Config::default().into_rules();
    for name in objects::FIXTURES {
        let review = fixture(name);
        let request = review["request"].as_object().expect("request");
        let mut reordered = serde_json::Map::new();
        for key in ["object", "oldObject"] {
            if let Some(value) = request.get(key) {
                reordered.insert(key.to_owned(), value.clone());
            }
        }
        for (key, value) in request {
            reordered
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        let mut moved = review.clone();
        moved["request"] = serde_json::Value::Object(reordered);
        assert_eq!(
            moved["request"]
                .as_object()
                .expect("object")
                .keys()
                .next()
                .map(String::as_str),
            Some("object")
        );
        let (usual, late) = (
            serde_json::to_vec(&review).expect("JSON"),
            serde_json::to_vec(&moved).expect("JSON"),
        );
        let usual = registry_rewriter::admission::review(&usual, &config).expect("reviewed");
        let late = registry_rewriter::admission::review(&late, &config).expect("reviewed");
        assert_eq!(usual.body, late.body, "{name}");
    }
}
