//! Reading a request body: the content type, and a size limit that still
//! lets the client read our answer.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;

use super::error_response::status;

/// `application/json`, with or without parameters such as charset.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body up to `limit`. An over-limit body is still read (and
/// thrown away) up to a bound before the 413 goes out: closing a connection
/// with unread data makes the kernel reset it, and the client would lose
/// the answer (nginx calls this a lingering close). The caller's request
/// timeout bounds the time this takes.
pub(super) async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Response> {
    let discard_max = limit.saturating_mul(4);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A body that arrives in one chunk (the usual case) is kept as it is;
    // only a body in several chunks is copied into one buffer.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("reading the body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            if first.is_none() && joined.is_empty() {
                first = Some(data);
            } else {
                if let Some(first) = first.take() {
                    let expected = declared.map_or(0, |d| d.min(limit as u64) as usize);
                    joined.reserve(expected.max(seen));
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&data);
            }
        } else if seen > discard_max {
            break;
        }
    }
    if seen > limit || declared.is_some_and(|length| length > limit as u64) {
        return Err(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("the body is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}
