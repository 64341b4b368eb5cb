//! AdmissionReview v1 in, AdmissionReview v1 out, around the pure engine.
//!
//! Only the fields we use are read, borrowing from the request body; the
//! object is handed to the engine as raw JSON. The response is written by
//! hand (`json_text`): the API contract wants `patch` as a base64 string,
//! which kube-core's `AdmissionResponse` does not produce (it serialises
//! the bytes as an array of numbers).
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
use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::engine::view::{parse_seed, JsonStr, ObjectSeed};
use crate::engine::{self, ChangeKind, ObjectParts, Scope, Workload};
use crate::json_text;

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
}

/// The answer to a well-formed review.
#[derive(Debug)]
pub struct Reviewed<'a> {
    pub body: Vec<u8>,
    pub summary: Summary<'a>,
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

/// The parts of a review we use. Read by hand rather than derived so that
/// the object can be read by the engine in the same pass (see `ReviewSeed`).
struct ReviewIn<'a> {
    api_version: Option<JsonStr<'a>>,
    kind: Option<JsonStr<'a>>,
    request: Option<RequestIn<'a>>,
}

struct RequestIn<'a> {
    uid: JsonStr<'a>,
    kind: KindIn<'a>,
    sub_resource: Option<JsonStr<'a>>,
    operation: Operation,
    namespace: Option<JsonStr<'a>>,
    name: Option<JsonStr<'a>>,
    dry_run: Option<bool>,
    object: ObjectIn<'a>,
    old_object: Option<&'a RawValue>,
}

/// `request.object`: read by the engine in place, or kept raw for later.
enum ObjectIn<'a> {
    Absent,
    Raw(&'a RawValue),
    Read(ObjectParts<'a>),
}

/// Parses an AdmissionReview. With `read_in_place`, when the request's kind
/// and operation are known before `object` (the API server writes them
/// first), the object is read by the engine's one-pass reader right there:
/// the object is scanned once instead of twice, which was a quarter of the
/// whole review's cost. Otherwise the object is kept raw and read later.
#[derive(Clone, Copy)]
struct ReviewSeed<'c> {
    config: &'c Config,
    read_in_place: bool,
}

impl<'de> DeserializeSeed<'de> for ReviewSeed<'_> {
    type Value = ReviewIn<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReviewSeed<'_> {
    type Value = ReviewIn<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut api_version, mut kind, mut request) = (None, None, None);
        while let Some(key) = map.next_key::<JsonStr<'de>>()? {
            match &*key {
                "apiVersion" => set_once(&mut api_version, "apiVersion", map.next_value()?)?,
                "kind" => set_once(&mut kind, "kind", map.next_value()?)?,
                "request" => set_once(
                    &mut request,
                    "request",
                    map.next_value_seed(RequestSeed(self))?,
                )?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ReviewIn {
            api_version: api_version.flatten(),
            kind: kind.flatten(),
            request: request.flatten(),
        })
    }
}

#[derive(Clone, Copy)]
struct RequestSeed<'c>(ReviewSeed<'c>);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = Option<RequestIn<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = Option<RequestIn<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AdmissionRequest object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut uid = None;
        let mut kind: Option<KindIn> = None;
        let mut sub_resource: Option<Option<JsonStr>> = None;
        let mut operation: Option<Operation> = None;
        let (mut namespace, mut name, mut dry_run) = (None, None, None);
        let (mut object, mut old_object) = (None, None);
        while let Some(key) = map.next_key::<JsonStr<'de>>()? {
            match &*key {
                "uid" => set_once(&mut uid, "uid", map.next_value()?)?,
                "kind" => set_once(&mut kind, "kind", map.next_value()?)?,
                "subResource" => set_once(&mut sub_resource, "subResource", map.next_value()?)?,
                "operation" => set_once(&mut operation, "operation", map.next_value()?)?,
                "namespace" => set_once(&mut namespace, "namespace", map.next_value()?)?,
                "name" => set_once(&mut name, "name", map.next_value()?)?,
                "dryRun" => set_once(&mut dry_run, "dryRun", map.next_value()?)?,
                "oldObject" => set_once(&mut old_object, "oldObject", map.next_value()?)?,
                "object" => {
                    let in_place = match (&kind, &operation, &sub_resource) {
                        (Some(kind), Some(Operation::Create), None | Some(None))
                            if self.0.read_in_place =>
                        {
                            Workload::find(&kind.group, &kind.kind)
                                .filter(|w| self.0.config.is_kind_enabled(w.kind))
                        }
                        _ => None,
                    };
                    let value = match in_place {
                        Some(workload) => ObjectIn::Read(map.next_value_seed(ObjectSeed {
                            pod_spec_path: workload.pod_spec_path,
                        })?),
                        None => map
                            .next_value::<Option<&'de RawValue>>()?
                            .map_or(ObjectIn::Absent, ObjectIn::Raw),
                    };
                    set_once(&mut object, "object", value)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(RequestIn {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            sub_resource: sub_resource.flatten(),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            namespace: namespace.flatten(),
            name: name.flatten(),
            dry_run: dry_run.flatten(),
            object: object.unwrap_or(ObjectIn::Absent),
            old_object: old_object.flatten(),
        }))
    }
}

/// A field given twice is refused: which one counts would be a guess.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(field));
    }
    Ok(())
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
pub fn review<'a>(body: &'a [u8], config: &Config) -> Result<Reviewed<'a>, ReviewError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ReviewError::Malformed(format!("the body is not UTF-8: {e}")))?;
    // The one-pass read; when it fails (a malformed review, or an object of
    // the wrong shape), the two-step read gives the same answer as ever and
    // the field-naming error.
    let seed = ReviewSeed {
        config,
        read_in_place: true,
    };
    let review = match parse_seed(text, seed) {
        Ok(review) => review,
        Err(_) => parse_seed(
            text,
            ReviewSeed {
                read_in_place: false,
                ..seed
            },
        )
        .map_err(ReviewError::Malformed)?,
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
    };

    let (Some(workload), Some(scope)) = (enabled_workload, scope) else {
        return Ok(respond(&request.uid, None, &[], summary));
    };
    let mutation = match &request.object {
        ObjectIn::Absent => return Err(ReviewError::MissingObject(operation)),
        ObjectIn::Raw(object) => engine::mutate(object, workload, scope, config),
        ObjectIn::Read(parts) => engine::mutate_parts(parts, workload, scope, config),
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
    let lines: Vec<&str> = mutation
        .changes
        .iter()
        .map(|c| c.message.as_str())
        .chain(mutation.warnings.iter().map(String::as_str))
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
