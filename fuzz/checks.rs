//! The properties the fuzz targets check. The same file is compiled into
//! `tests/fuzz_regressions.rs`, which replays the corpus and every past
//! finding in `cargo test`.

use base64::Engine as _;
use registry_rewriter::admission;
use registry_rewriter::config::Config;
use registry_rewriter::engine::Rules;
use registry_rewriter::engine::{self, Scope, Workload};
use registry_rewriter::reference::{ImageRef, Location};
use serde_json::value::RawValue;
use serde_json::Value;

fn config() -> &'static Rules {
    static RULES: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
    RULES.get_or_init(|| Config::default().into_rules())
}

/// References: parsing never panics; what parses formats back to the same
/// text and parses again to the same parts; a rewrite keeps path, tag and
/// digest and lands on the target registry.
pub fn check_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Location::parse(text);
    let Ok(reference) = ImageRef::parse(text) else {
        return;
    };
    let formatted = reference.to_string();
    assert_eq!(formatted, text, "formatting changes the reference");
    let again = ImageRef::parse(&formatted).expect("a formatted reference parses");
    assert_eq!(again, reference);
    if let Some(domain) = reference.domain {
        if let Some((rule, rest)) = config().find_rule(&domain, reference.path) {
            assert!(
                reference.path.ends_with(rest),
                "the rest is the end of the path"
            );
            let rewritten = rule.rewrite_name(rest);
            let parsed = ImageRef::parse(&rewritten).expect("a rewritten name parses");
            assert!(config().is_rewrite_target(&parsed.domain.expect("a domain")));
            assert_eq!(
                parsed.path, rest,
                "the path is kept (the default rules have no prefixes)"
            );
        }
    }
}

/// The engine, on any JSON object: no panic; the patch applies to the
/// object; running again on the result yields nothing (idempotency).
pub fn check_engine(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut object) = serde_json::from_str::<Value>(text) else {
        return;
    };
    for (group, kind) in [("", "Pod"), ("batch", "Job")] {
        let workload = Workload::find(group, kind).expect("in the table");
        let raw = RawValue::from_string(object.to_string()).expect("valid JSON");
        let Ok(mutation) = engine::mutate(&raw, workload, Scope::Create, config()) else {
            continue;
        };
        json_patch::patch(&mut object, &mutation.patch).expect("the patch applies to its input");
        let raw = RawValue::from_string(object.to_string()).expect("valid JSON");
        let again =
            engine::mutate(&raw, workload, Scope::Create, config()).expect("the result reads");
        assert!(again.is_empty(), "not idempotent: {:?}", again.patch);
    }
}

/// The review handler, on any bytes: no panic, and either an error (a 400)
/// or a well-formed response whose patch, if any, applies to the object.
pub fn check_review(data: &[u8]) {
    let Ok(reviewed) = admission::review(data, config()) else {
        return;
    };
    let response: Value = serde_json::from_slice(&reviewed.body).expect("the response is JSON");
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["response"]["allowed"], true);
    assert!(response["response"]["uid"].is_string());
    let patch = &response["response"]["patch"];
    assert_eq!(
        patch.is_string(),
        response["response"]["patchType"] == "JSONPatch"
    );
    if let Some(patch) = patch.as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON Patch");
        // JSON allows numbers beyond f64, which serde_json's Value refuses; the
        // webhook only skips such numbers in fields it does not read, but the
        // object cannot be rebuilt here to apply the patch to it.
        let Ok(request) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let mut object = request["request"]["object"].clone();
        json_patch::patch(&mut object, &patch).expect("the patch applies to the object");
    }
}
