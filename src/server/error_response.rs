//! Error answers as Kubernetes `Status` objects, the way kubectl and client
//! libraries expect them.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

pub(crate) fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (code, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    json_response(code, body.to_string().into_bytes())
}

pub(crate) fn method_not_allowed() -> Response {
    let mut response = status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "use POST with an AdmissionReview",
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static(Method::POST.as_str()),
    );
    response
}

pub(crate) fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such endpoint; the webhook path is /mutate",
    )
}
