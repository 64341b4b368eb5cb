//! The rules as MutatingAdmissionPolicies: CEL that the API server runs
//! itself, with no webhook to be down. The policies are built from the same
//! compiled [`Rules`] as the webhook and `mutate`, and do what the engine
//! does; the differences CEL cannot remove are listed in the README.
//!
//! One policy for every enabled kind (CREATE) and for `kubectl debug`
//! (UPDATE of `pods/ephemeralcontainers`, the new ephemeral containers
//! only), which reads the pod spec where the request's kind has it. It has
//! the webhook's namespace exclusions and skip annotation, and a binding of
//! the same name.

mod credentials;
mod expr;
mod grammar;
pub mod guard;
pub mod prefilter;
mod request;

use serde_json::{json, Value};

use crate::engine::rules::{Rules, ORIGINAL_IMAGES_ANNOTATION, SKIP_ANNOTATION};
use crate::scope::{EXCLUDED_NAMESPACES, IGNORE_NAMESPACE_LABEL};
use expr::{lit, lit_list, Exprs, BUILDS};
use request::{AT, EPHEMERAL, SPEC};

/// The API version of the objects printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    /// GA in Kubernetes 1.36.
    #[default]
    V1,
    /// Kubernetes 1.34 and 1.35, with the `MutatingAdmissionPolicy` feature
    /// gate and the API version enabled.
    V1beta1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "admissionregistration.k8s.io/v1",
            ApiVersion::V1beta1 => "admissionregistration.k8s.io/v1beta1",
        }
    }
}

/// The rules cannot be written as a policy equal to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "rewrites[{index}].from: {from:?} is a single-label host without a port, which the \
         reference grammar reads as a registry only when written with upper-case letters; \
         a policy cannot express that (add the port, or use the webhook)"
    )]
    SingleLabelHost { index: usize, from: String },
}

/// The webhook's matchCondition, word for word: an object annotated
/// `skip: "true"` is not touched.
pub fn not_skipped_condition() -> String {
    let key = lit(SKIP_ANNOTATION);
    format!(
        "!has(object.metadata.annotations) || !({key} in object.metadata.annotations) || object.metadata.annotations[{key}] != 'true'"
    )
}

/// Namespaces the webhook and the policy leave alone.
pub fn namespace_selector() -> Value {
    json!({
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": EXCLUDED_NAMESPACES},
            {"key": IGNORE_NAMESPACE_LABEL, "operator": "NotIn", "values": ["true"]},
        ]
    })
}

pub(crate) const LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The name of the policy and of its binding.
pub const NAME: &str = "registry-rewriter";

/// The policy and its binding for `rules`.
pub fn render(rules: &Rules, version: ApiVersion) -> Result<Vec<Value>, PolicyError> {
    check(rules)?;
    if rules.kinds.is_empty() {
        return Ok(Vec::new());
    }
    let exprs = Exprs::new(rules);
    let policy = Policy {
        exprs: &exprs,
        rules,
    };
    Ok(vec![policy.object(NAME, version), binding(NAME, version)])
}

fn check(rules: &Rules) -> Result<(), PolicyError> {
    for (index, rule) in rules.rewrites.iter().enumerate() {
        let single_label = !rule.from_host.contains(['.', ':', '['])
            && rule.from_host != "localhost"
            && rule.from_port.is_none();
        if single_label {
            return Err(PolicyError::SingleLabelHost {
                index,
                from: rule.from_text.clone(),
            });
        }
    }
    Ok(())
}

fn labels() -> Value {
    json!({"app.kubernetes.io/name": "registry-rewriter", "app.kubernetes.io/component": "policy"})
}

fn binding(name: &str, version: ApiVersion) -> Value {
    json!({
        "apiVersion": version.as_str(),
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels()},
        "spec": {"policyName": name},
    })
}

#[derive(Clone, Copy)]
struct Policy<'a> {
    exprs: &'a Exprs<'a>,
    rules: &'a Rules,
}

impl Policy<'_> {
    fn object(&self, name: &str, version: ApiVersion) -> Value {
        let (constraints, conditions) = self.matching();
        let variables: Vec<Value> = self
            .variables()
            .into_iter()
            .map(|(name, expression)| json!({"name": name, "expression": expression}))
            .collect();
        let mutations: Vec<Value> = self
            .mutations()
            .into_iter()
            .map(|expression| json!({"patchType": "JSONPatch", "jsonPatch": {"expression": expression}}))
            .collect();
        json!({
            "apiVersion": version.as_str(),
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels()},
            "spec": {
                // As the webhook: a policy that fails never blocks a Pod.
                "failurePolicy": "Ignore",
                // Sidecars that later webhooks inject are rewritten too.
                "reinvocationPolicy": "IfNeeded",
                "matchConstraints": constraints,
                "matchConditions": conditions,
                "variables": variables,
                "mutations": mutations,
            },
        })
    }

    /// `images`: per container of [`Self::all_containers`], its new image
    /// (empty when no rule moves it) and whether it ends on a target.
    fn images_variable(&self) -> String {
        format!(
            "({}).map(xc, {} && has(xc.image) ? {} : ['', ''])",
            self.all_containers(),
            self.considered(),
            self.exprs.image_info("xc.image")
        )
    }

    /// The policy's variables: the request's, the builders' tables, and per
    /// container its new image and its new build lists.
    fn variables(&self) -> Vec<(String, String)> {
        let mut variables = self.request_variables();
        let all = self.all_containers();
        let considered = self.considered();
        variables.push(("images".into(), self.images_variable()));
        if !self.rules.builders.is_empty() {
            variables.extend(self.exprs.builder_tables());
            let wanted = format!(
                "{considered} && {}",
                prefilter::container_mentions(self.rules)
            );
            variables.extend(self.exprs.build_variables(&all, &wanted));
        }
        if self.has_credentials() {
            variables.extend(self.credential_variables());
        }
        variables
    }

    /// One JSONPatch expression: every concern's operations, each computed
    /// from the object as it arrived, in the order the engine writes them
    /// (builds, credentials, what records the original images, the images
    /// themselves). One mutation, not one per concern: the plugin converts
    /// the whole object after each mutation, which cost more than the CEL.
    fn mutations(&self) -> Vec<String> {
        let parts: Vec<String> = self
            .concerns()
            .into_iter()
            .map(|part| format!("({part})"))
            .collect();
        vec![parts.join(" +\n")]
    }

    fn concerns(&self) -> Vec<String> {
        let mut mutations = Vec::new();
        if !self.rules.builders.is_empty() {
            mutations.push(self.builds());
        }
        // What `kubectl debug` cannot change: the pod's volumes,
        // annotations and pull secrets.
        let not_ephemeral = |part: String| format!("{EPHEMERAL} ? [] : ({part})");
        if self.has_credentials() {
            mutations.push(not_ephemeral(self.credential_mutation()));
        }
        mutations.push(not_ephemeral(self.original_images()));
        if !self.rules.image_pull_secrets.is_empty() {
            mutations.push(not_ephemeral(self.pull_secrets()));
        }
        mutations.push(self.per_list(|list, offset| {
            format!(
                "{{LIST}}.transformList(xi, xc, variables.images[{offset} + xi][0] != '', \
                 JSONPatch{{op: 'replace', path: {} + string(xi) + '/image', value: variables.images[{offset} + xi][0]}})",
                self.pointer(list)
            )
        }));
        mutations
    }

    /// The builders' `command` and `args`, where the walk changed them.
    fn builds(&self) -> String {
        self.per_list(|list, offset| {
            let build = format!("variables.{BUILDS}[{offset} + xi]");
            let pointer = self.pointer(list);
            format!(
                "{{LIST}}.transformList(xi, xc, has(xc.command) && size({build}) > 0 && {build}[0] != xc.command, \
                 JSONPatch{{op: 'replace', path: {pointer} + string(xi) + '/command', value: {build}[0]}}) + \
                 {{LIST}}.transformList(xi, xc, size({build}) > 0 && {build}[1] != (has(xc.args) ? xc.args : []), \
                 JSONPatch{{op: 'add', path: {pointer} + string(xi) + '/args', value: {build}[1]}})"
            )
        })
    }

    /// The `original-images` annotation: container label -> original image,
    /// merged into an earlier round's map.
    fn original_images(&self) -> String {
        let label_name = r#"xc.name.replace('\\', '\\\\').replace('"', '\\"')"#;
        let entries = self.per_list(|list, offset| {
            format!(
                "{{LIST}}.transformList(xi, xc, variables.images[{offset} + xi][0] != '', \
                 '\"{list}[' + (has(xc.name) ? {label_name} : '#' + string(xi)) + ']\":\"' + xc.image + '\"')"
            )
        });
        let key = lit(ORIGINAL_IMAGES_ANNOTATION);
        let pointer = lit(&format!(
            "/metadata/annotations/{}",
            ORIGINAL_IMAGES_ANNOTATION
                .replace('~', "~0")
                .replace('/', "~1")
        ));
        let fresh = "'{' + xentries.join(',') + '}'";
        let merged = format!(
            "[object.metadata.annotations[{key}]].map(xold, \
             xold == '{{}}' ? {fresh} : \
             xold.startsWith('{{') && xold.endsWith('}}') ? \
             [xentries.filter(xe, !xold.contains(xe.substring(0, xe.indexOf('\":\"') + 2)))].map(xnew, \
             size(xnew) == 0 ? xold : xold.substring(0, size(xold) - 1) + ',' + xnew.join(',') + '}}')[0] : \
             {fresh})[0]"
        );
        let value = format!(
            "has(object.metadata.annotations) && {key} in object.metadata.annotations ? {merged} : {fresh}"
        );
        format!(
            "[{entries}].map(xentries, size(xentries) == 0 ? [] : [{value}].map(xv, \
             has(object.metadata.annotations) \
             ? [JSONPatch{{op: 'add', path: {pointer}, value: xv}}] \
             : [JSONPatch{{op: 'add', path: '/metadata/annotations', value: {{{key}: xv}}}}])[0])[0]"
        )
    }

    /// `imagePullSecrets`: the missing names appended once an image is on a
    /// rewrite target. A list of map literals, never of `Object`s (a list
    /// of `Object` initialisers panics the 1.36 plugin). Created only in a
    /// Pod: in a pod template it would keep the ServiceAccount's secrets
    /// from every Pod (see the engine's `ensure_pull_secrets`).
    fn pull_secrets(&self) -> String {
        let spec = SPEC;
        let create = format!(
            "{AT} == '/spec' ? [JSONPatch{{op: 'add', path: {AT} + '/imagePullSecrets', \
             value: xm.map(xn, {{'name': xn}})}}] : []"
        );
        let on_target = "variables.images.exists(xn, xn[1] == 't')";
        let missing = format!(
            "{}.filter(xn, !(has({spec}.imagePullSecrets) && {spec}.imagePullSecrets.exists(xs, has(xs.name) && xs.name == xn)))",
            lit_list(&self.rules.image_pull_secrets)
        );
        format!(
            "!({on_target}) ? [] : [{missing}].map(xm, size(xm) == 0 ? [] : \
             has({spec}.imagePullSecrets) \
             ? xm.map(xn, JSONPatch{{op: 'add', path: {AT} + '/imagePullSecrets/-', value: {{'name': xn}}}}) \
             : ({create}))[0]"
        )
    }
}
