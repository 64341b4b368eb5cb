//! AdmissionReview v1 in, AdmissionReview v1 out, around the pure engine.
//!
//! Only the fields we use are read, borrowing from the request body; the
//! object is handed to the engine as raw JSON. The response is written with
//! our own small types because the API contract wants `patch` as a base64
//! string, which kube-core's `AdmissionResponse` does not produce (it
//! serialises the bytes as an array of numbers).
//!
//! What is mutated, and why only that:
//! - CREATE of an enabled kind: the whole pod spec.
//! - UPDATE of `pods/ephemeralcontainers` (`kubectl debug`): the new
//!   ephemeral containers only.
//! - Every other UPDATE, DELETE and CONNECT is allowed unchanged. Pod and
//!   Job specs are immutable for the most part, so patching an update would
//!   make updates of objects created before the webhook was installed fail.

use base64::Engine as _;
use kube::core::admission::Operation;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::Config;
use crate::engine::view::{parse_view, JsonStr};
use crate::engine::{self, ChangeKind, Scope, Workload};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const REVIEW_KIND: &str = "AdmissionReview";
const WARNING_PREFIX: &str = "registry-rewriter: ";

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
    pub const ALL: [Outcome; 6] = [
        Outcome::Mutated,
        Outcome::Unchanged,
        Outcome::Skipped,
        Outcome::Ignored,
        Outcome::InvalidObject,
        Outcome::BadRequest,
    ];

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

/// What one review did, for the log line and the metrics.
#[derive(Debug, Clone)]
pub struct Summary {
    pub uid: String,
    /// The workload kind from our table, or `other`.
    pub kind: &'static str,
    pub operation: &'static str,
    pub namespace: String,
    /// The object's name, or its generateName.
    pub name: String,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub changes: Vec<ChangeKind>,
}

/// The answer to a well-formed review.
#[derive(Debug)]
pub struct Reviewed {
    pub body: Vec<u8>,
    pub summary: Summary,
}

/// A review we cannot answer; the server replies 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(String),
    #[error("unsupported AdmissionReview version {0:?}: registry-rewriter speaks {API_VERSION} (set admissionReviewVersions: [v1])")]
    UnsupportedVersion(String),
    #[error("unexpected kind {0:?}: expected {REVIEW_KIND}")]
    WrongKind(String),
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    #[error("request.object is required for {0}")]
    MissingObject(&'static str),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
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
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct KindIn<'a> {
    #[serde(borrow)]
    group: JsonStr<'a>,
    #[serde(borrow)]
    kind: JsonStr<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    // The API server rejects a patchType without a patch: both or neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
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
pub fn review(body: &[u8], config: &Config) -> Result<Reviewed, ReviewError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ReviewError::Malformed(format!("the body is not UTF-8: {e}")))?;
    let review: ReviewIn = parse_view(text).map_err(ReviewError::Malformed)?;
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
        uid: request.uid.to_string(),
        kind: workload.map_or("other", |w| w.kind),
        operation,
        namespace: request.namespace.as_deref().unwrap_or("").to_owned(),
        name: request.name.as_deref().unwrap_or("").to_owned(),
        dry_run: request.dry_run.unwrap_or(false),
        outcome: Outcome::Ignored,
        changes: Vec::new(),
    };

    let (Some(workload), Some(scope)) = (enabled_workload, scope) else {
        return Ok(respond(&request.uid, None, Vec::new(), summary));
    };
    let object = request
        .object
        .ok_or(ReviewError::MissingObject(operation))?;
    let mutation = match engine::mutate(object, workload, scope, config) {
        Ok(mutation) => mutation,
        Err(e) => {
            summary.outcome = Outcome::InvalidObject;
            let warning = format!("{WARNING_PREFIX}object left unchanged: {e}");
            return Ok(respond(&request.uid, None, vec![warning], summary));
        }
    };
    if summary.name.is_empty() {
        summary.name = mutation.generate_name.clone().unwrap_or_default();
    }
    summary.outcome = if mutation.skipped {
        Outcome::Skipped
    } else if mutation.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Mutated
    };
    summary.changes = mutation.changes.iter().map(|c| c.kind).collect();
    let warnings = mutation
        .changes
        .iter()
        .map(|c| c.message.as_str())
        .chain(mutation.warnings.iter().map(String::as_str))
        .map(|line| format!("{WARNING_PREFIX}{line}"))
        .collect();
    let patch = (!mutation.is_empty()).then_some(&mutation.patch);
    Ok(respond(&request.uid, patch, warnings, summary))
}

fn respond(
    uid: &str,
    patch: Option<&json_patch::Patch>,
    warnings: Vec<String>,
    summary: Summary,
) -> Reviewed {
    let patch = patch.map(|patch| {
        let json = serde_json::to_vec(patch).expect("a JSON Patch always serialises");
        base64::engine::general_purpose::STANDARD.encode(json)
    });
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: REVIEW_KIND,
        response: ResponseOut {
            uid,
            allowed: true,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings,
        },
    };
    Reviewed {
        body: serde_json::to_vec(&out).expect("the response always serialises"),
        summary,
    }
}
