//! AdmissionReview v1 in, AdmissionReview v1 out, around the pure engine.
//!
//! Only the fields we use are read, borrowing from the request body, and
//! the object is read in the same pass by the engine's view. The response
//! is written by hand (`json_text`, kept by a paired load run): the API
//! contract wants `patch` as a base64 string, which kube-core's
//! `AdmissionResponse` does not produce (it serialises the bytes as an
//! array of numbers).
//!
//! What is mutated, and why only that:
//! - CREATE of an enabled kind: the whole pod spec.
//! - UPDATE of `pods/ephemeralcontainers` (`kubectl debug`): the new
//!   ephemeral containers only.
//! - Every other UPDATE, DELETE and CONNECT is allowed unchanged. Pod and
//!   Job specs are immutable for the most part, so patching an update would
//!   make updates of objects created before the webhook was installed fail.

use base64::Engine as _;
use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::engine::view::{self, FieldError, JsonStr, MapOnly};
use crate::engine::{
    self, ChangeKind, Leftover, LeftoverReason, ObjectView, Rules, Scope, Workload,
};
use crate::json_text;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const REVIEW_KIND: &str = "AdmissionReview";
const WARNING_PREFIX: &str = "registry-rewriter: ";

/// `request.operation`, as the API server writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// How a review ended; the `outcome` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Changed, with a patch.
    Mutated,
    /// Looked at, nothing to change.
    Unchanged,
    /// Opted out with the skip annotation.
    Skipped,
    /// Not a kind or operation we mutate.
    Ignored,
    /// The object is not shaped as its kind should be; allowed unchanged.
    InvalidObject,
    /// The review itself was malformed; answered with a 4xx.
    BadRequest,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Ignored => "ignored",
            Outcome::InvalidObject => "invalid_object",
            Outcome::BadRequest => "bad_request",
        }
    }
}

/// What one review did, for the log line and the metrics. Borrows from
/// the request body where it can.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    pub uid: Cow<'a, str>,
    /// The workload kind from our table, or `other`.
    pub kind: &'static str,
    pub operation: &'static str,
    pub namespace: Cow<'a, str>,
    /// The object's name, or its generateName.
    pub name: Cow<'a, str>,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub changes: Vec<ChangeKind>,
    pub leftovers: Vec<LeftoverReason>,
}

/// The answer to a well-formed review.
#[derive(Debug)]
pub struct Reviewed<'a> {
    pub body: Vec<u8>,
    pub summary: Summary<'a>,
}

/// A review we cannot answer; the server replies 400 with this message.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not a valid AdmissionReview: the body is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(FieldError),
    #[error("unsupported AdmissionReview version {0:?}: registry-rewriter speaks {API_VERSION} (set admissionReviewVersions: [v1])")]
    UnsupportedVersion(String),
    #[error("unexpected kind {0:?}: expected {REVIEW_KIND}")]
    WrongKind(String),
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    #[error("request.object is required for {0}")]
    MissingObject(&'static str),
}

/// The parts of a review we use; every other field is skipped. The object
/// is read by the engine's view in the same pass (`O` is [`ObjectView`]),
/// or, when that fails, kept raw (`O` is `&RawValue`) so that the engine can
/// name the field that is at fault.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an AdmissionReview object")]
#[serde(bound(deserialize = "O: Deserialize<'de>"))]
struct ReviewIn<'a, O> {
    #[serde(borrow, default)]
    api_version: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a, O>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an AdmissionRequest object")]
#[serde(bound(deserialize = "O: Deserialize<'de>"))]
struct RequestIn<'a, O> {
    #[serde(borrow)]
    uid: JsonStr<'a>,
    #[serde(borrow)]
    kind: KindIn<'a>,
    #[serde(borrow, default)]
    sub_resource: Option<JsonStr<'a>>,
    operation: Operation,
    #[serde(borrow, default)]
    namespace: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    name: Option<JsonStr<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default = "none")]
    object: Option<O>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
}

fn none<T>() -> Option<T> {
    None
}

/// `request.object`, read by the engine's view or kept raw.
enum ObjectIn<'a> {
    Read(ObjectView<'a>),
    Raw(&'a RawValue),
}

impl<'a, O> ReviewIn<'a, O> {
    fn map_object(self, wrap: impl FnOnce(O) -> ObjectIn<'a>) -> ReviewIn<'a, ObjectIn<'a>> {
        ReviewIn {
            api_version: self.api_version,
            kind: self.kind,
            request: self.request.map(|request| RequestIn {
                object: request.object.map(wrap),
                uid: request.uid,
                kind: request.kind,
                sub_resource: request.sub_resource,
                operation: request.operation,
                namespace: request.namespace,
                name: request.name,
                dry_run: request.dry_run,
                old_object: request.old_object,
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a group, version and kind")]
struct KindIn<'a> {
    #[serde(borrow)]
    group: JsonStr<'a>,
    #[serde(borrow)]
    kind: JsonStr<'a>,
}

fn operation_label(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Answers one AdmissionReview. Never panics; a malformed review is an `Err`.
pub fn review<'a>(body: &'a [u8], config: &Rules) -> Result<Reviewed<'a>, ReviewError> {
    let text = std::str::from_utf8(body).map_err(ReviewError::NotUtf8)?;
    // The one-pass read; when it fails (a malformed review, or an object of
    // the wrong shape), the object is kept raw, so that the engine names the
    // field at fault, or the review's own error is reported.
    let review = match view::parse::<ReviewIn<MapOnly<ObjectView>>>(text) {
        Ok(review) => review.map_object(|view| ObjectIn::Read(view.0)),
        Err(_) => view::parse::<ReviewIn<&RawValue>>(text)
            .map_err(ReviewError::Malformed)?
            .map_object(ObjectIn::Raw),
    };
    match review.api_version.as_deref() {
        Some(API_VERSION) => {}
        other => {
            return Err(ReviewError::UnsupportedVersion(
                other.unwrap_or("").to_owned(),
            ))
        }
    }
    match review.kind.as_deref() {
        Some(REVIEW_KIND) => {}
        other => return Err(ReviewError::WrongKind(other.unwrap_or("").to_owned())),
    }
    let request = review.request.ok_or(ReviewError::MissingRequest)?;
    let operation = operation_label(&request.operation);
    let workload = Workload::find(&request.kind.group, &request.kind.kind);
    let enabled_workload = workload.filter(|w| config.is_kind_enabled(w.kind));

    let scope = match (
        &request.operation,
        request.sub_resource.as_deref().unwrap_or(""),
    ) {
        (Operation::Create, "") => Some(Scope::Create),
        (Operation::Update, "ephemeralcontainers") if &*request.kind.kind == "Pod" => {
            Some(Scope::NewEphemeralContainers {
                old_object: request.old_object,
            })
        }
        _ => None,
    };

    let mut summary = Summary {
        uid: request.uid.0.clone(),
        kind: workload.map_or("other", |w| w.kind),
        operation,
        namespace: request.namespace.map(|n| n.0).unwrap_or_default(),
        name: request.name.map(|n| n.0).unwrap_or_default(),
        dry_run: request.dry_run.unwrap_or(false),
        outcome: Outcome::Ignored,
        changes: Vec::new(),
        leftovers: Vec::new(),
    };

    let (Some(workload), Some(scope)) = (enabled_workload, scope) else {
        return Ok(respond(&request.uid, None, &[], summary));
    };
    let mutation = match request.object {
        None => return Err(ReviewError::MissingObject(operation)),
        Some(ObjectIn::Raw(object)) => engine::mutate(object, workload, scope, config),
        Some(ObjectIn::Read(view)) => {
            let parts = view.into_parts(workload.pod_spec_path);
            engine::mutate_parts(&parts, workload, scope, config)
        }
    };
    let mut mutation = match mutation {
        Ok(mutation) => mutation,
        Err(e) => {
            summary.outcome = Outcome::InvalidObject;
            let warning = format!("object left unchanged: {e}");
            return Ok(respond(&request.uid, None, &[&warning], summary));
        }
    };
    if summary.name.is_empty() {
        if let Some(generate_name) = mutation.generate_name.take() {
            summary.name = Cow::Owned(generate_name);
        }
    }
    summary.outcome = if mutation.skipped {
        Outcome::Skipped
    } else if mutation.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Mutated
    };
    summary.changes = mutation.changes.iter().map(|c| c.kind).collect();
    summary.leftovers = mutation.leftovers.iter().map(|l| l.reason).collect();
    let left: Vec<String> = mutation.leftovers.iter().map(Leftover::message).collect();
    let lines: Vec<&str> = mutation
        .changes
        .iter()
        .map(|c| c.message.as_str())
        .chain(mutation.warnings.iter().map(String::as_str))
        .chain(left.iter().map(String::as_str))
        .collect();
    let patch = (!mutation.is_empty()).then_some(&mutation.patch);
    Ok(respond(&request.uid, patch, &lines, summary))
}

/// Writes the AdmissionReview response. The envelope is fixed text; only
/// the uid and the warnings need JSON escaping, and the patch is base64
/// encoded straight into the body (its alphabet needs no escaping). The API
/// server rejects a patchType without a patch, so both or neither are sent.
fn respond<'a>(
    uid: &str,
    patch: Option<&json_patch::Patch>,
    warnings: &[&str],
    summary: Summary<'a>,
) -> Reviewed<'a> {
    let patch_json = patch.map(|patch| {
        let mut json = String::with_capacity(512);
        json_text::write_patch(&mut json, patch);
        json
    });
    let patch_len = patch_json
        .as_ref()
        .map_or(0, |json| json.len() * 4 / 3 + 48);
    let warnings_len: usize = warnings
        .iter()
        .map(|w| WARNING_PREFIX.len() + w.len() + 4)
        .sum();
    let mut body = String::with_capacity(128 + uid.len() + patch_len + warnings_len);
    body.push_str(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    json_text::push_str(&mut body, uid);
    body.push_str(r#","allowed":true"#);
    if let Some(json) = patch_json {
        body.push_str(r#","patchType":"JSONPatch","patch":""#);
        base64::engine::general_purpose::STANDARD.encode_string(json, &mut body);
        body.push('"');
    }
    if !warnings.is_empty() {
        body.push_str(r#","warnings":["#);
        for (i, line) in warnings.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push('"');
            // Writing to a String cannot fail.
            let _ = write!(json_text::Escaped(&mut body), "{WARNING_PREFIX}{line}");
            body.push('"');
        }
        body.push(']');
    }
    body.push_str("}}");
    Reviewed {
        body: body.into_bytes(),
        summary,
    }
}
