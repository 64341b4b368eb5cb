//! The rules as MutatingAdmissionPolicies: CEL that the API server runs
//! itself, with no webhook to be down. The policies are built from the same
//! compiled [`Rules`] as the webhook and `mutate`, and do what the engine
//! does; the differences CEL cannot remove are listed in the README.
//!
//! One policy per enabled kind (CREATE), plus one for `kubectl debug` (UPDATE
//! of `pods/ephemeralcontainers`, the new ephemeral containers only). Each
//! has the webhook's namespace exclusions and skip annotation, and a
//! binding of the same name.

mod credentials;
mod expr;
mod grammar;
pub mod guard;
pub mod prefilter;

use serde_json::{json, Value};

use crate::engine::rules::{Rules, ORIGINAL_IMAGES_ANNOTATION, SKIP_ANNOTATION};
use crate::engine::Workload;
use crate::scope::{EXCLUDED_NAMESPACES, IGNORE_NAMESPACE_LABEL};
use expr::{lit, lit_list, Exprs};

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

/// Which containers a policy rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every container of a new object, its pull secrets and its annotation.
    Create,
    /// The ephemeral containers `oldObject` does not have yet.
    NewEphemeralContainers,
}

/// Every policy and binding for `rules`.
pub fn render(rules: &Rules, version: ApiVersion) -> Result<Vec<Value>, PolicyError> {
    check(rules)?;
    let exprs = Exprs::new(rules);
    let mut objects = Vec::new();
    for workload in &rules.kinds {
        let name = format!("registry-rewriter-{}", workload.resource);
        let policy = Policy {
            exprs: &exprs,
            rules,
            workload,
            scope: Scope::Create,
        };
        objects.push(policy.object(&name, version));
        objects.push(binding(&name, version));
        if workload.kind == "Pod" {
            let name = format!(
                "registry-rewriter-{}-ephemeralcontainers",
                workload.resource
            );
            let policy = Policy {
                scope: Scope::NewEphemeralContainers,
                ..policy
            };
            objects.push(policy.object(&name, version));
            objects.push(binding(&name, version));
        }
    }
    Ok(objects)
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
    workload: &'a Workload,
    scope: Scope,
}

impl Policy<'_> {
    /// `matchConstraints` and `matchConditions`: the requests the webhook
    /// gets, its exclusions, and the pre-filter. The guard matches alike.
    fn matching(&self) -> (Value, Value) {
        let (operation, resource) = match self.scope {
            Scope::Create => ("CREATE", self.workload.resource.to_owned()),
            Scope::NewEphemeralContainers => (
                "UPDATE",
                format!("{}/ephemeralcontainers", self.workload.resource),
            ),
        };
        let constraints = json!({
            "resourceRules": [{
                "apiGroups": [self.workload.group],
                "apiVersions": ["v1"],
                "operations": [operation],
                "resources": [resource],
                "scope": "Namespaced",
            }],
            "namespaceSelector": namespace_selector(),
        });
        let conditions = json!([
            {"name": "not-skipped", "expression": not_skipped_condition()},
            {"name": prefilter::NAME, "expression": prefilter::condition(self.rules, self.workload.pod_spec_path)},
        ]);
        (constraints, conditions)
    }

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

    /// CEL for the pod spec, and the JSON pointer to it.
    fn spec(&self) -> (String, String) {
        let path = self.workload.pod_spec_path;
        (
            format!("object.{}", path.join(".")),
            format!("/{}", path.join("/")),
        )
    }

    fn lists(&self) -> &'static [&'static str] {
        match self.scope {
            Scope::Create => &LISTS,
            Scope::NewEphemeralContainers => &LISTS[2..],
        }
    }

    /// Which containers of `list` this policy looks at, as a condition on `xc`.
    fn considered(&self) -> &'static str {
        match self.scope {
            Scope::Create => "true",
            Scope::NewEphemeralContainers => {
                "(!has(xc.name) || !(has(oldObject.spec.ephemeralContainers) && oldObject.spec.ephemeralContainers.exists(xo, has(xo.name) && xo.name == xc.name)))"
            }
        }
    }

    /// Every container this policy looks at, as one list (`containers`,
    /// then `initContainers`, then `ephemeralContainers`).
    fn all_containers(&self) -> String {
        let (spec, _) = self.spec();
        let lists: Vec<String> = self
            .lists()
            .iter()
            .map(|list| format!("(has({spec}.{list}) ? {spec}.{list} : [])"))
            .collect();
        lists.join(" + ")
    }

    /// Where `list` starts in [`Self::all_containers`].
    fn offset(&self, list: &str) -> String {
        let (spec, _) = self.spec();
        let before: Vec<String> = self
            .lists()
            .iter()
            .take_while(|l| **l != list)
            .map(|l| format!("(has({spec}.{l}) ? size({spec}.{l}) : 0)"))
            .collect();
        if before.is_empty() {
            "0".to_owned()
        } else {
            before.join(" + ")
        }
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

    /// The policy's variables: the role maps of the builders, the grammar's
    /// patterns, and per container its new image and its new build lists.
    fn variables(&self) -> Vec<(String, String)> {
        let mut variables: Vec<(String, String)> = self
            .rules
            .builders
            .iter()
            .enumerate()
            .flat_map(|(index, profile)| {
                [
                    (format!("builder{index}Roles"), Exprs::role_map(profile)),
                    (
                        format!("builder{index}ValueFlags"),
                        Exprs::value_flags(profile),
                    ),
                ]
            })
            .collect();
        let all = self.all_containers();
        let considered = self.considered();
        variables.push(("images".into(), self.images_variable()));
        if !self.rules.builders.is_empty() {
            variables.push((
                "builds".into(),
                format!(
                    "({all}).map(xc, {considered} && {} ? {} : [])",
                    prefilter::container_mentions(self.rules),
                    self.exprs.build()
                ),
            ));
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
        if self.has_credentials() {
            mutations.push(self.credential_mutation());
        }
        if self.scope == Scope::Create {
            mutations.push(self.original_images());
            if !self.rules.image_pull_secrets.is_empty() {
                mutations.push(self.pull_secrets());
            }
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

    fn pointer(&self, list: &str) -> String {
        let (_, pointer) = self.spec();
        lit(&format!("{pointer}/{list}/"))
    }

    /// `part(list, offset)` for every list the object has, concatenated;
    /// `{LIST}` in a part stands for the list.
    fn per_list(&self, part: impl Fn(&str, &str) -> String) -> String {
        let (spec, _) = self.spec();
        let lists: Vec<String> = self
            .lists()
            .iter()
            .map(|list| {
                let text =
                    part(list, &self.offset(list)).replace("{LIST}", &format!("{spec}.{list}"));
                format!("(has({spec}.{list}) ? {text} : [])")
            })
            .collect();
        lists.join(" +\n")
    }

    /// The builders' `command` and `args`, where the walk changed them.
    fn builds(&self) -> String {
        self.per_list(|list, offset| {
            let build = format!("variables.builds[{offset} + xi]");
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
        let (spec, pointer) = self.spec();
        let create = match self.workload.pod_spec_path {
            ["spec"] => format!(
                "[JSONPatch{{op: 'add', path: {}, value: xm.map(xn, {{'name': xn}})}}]",
                lit(&format!("{pointer}/imagePullSecrets"))
            ),
            _ => "[]".to_owned(),
        };
        let on_target = "variables.images.exists(xn, xn[1] == 't')";
        let missing = format!(
            "{}.filter(xn, !(has({spec}.imagePullSecrets) && {spec}.imagePullSecrets.exists(xs, has(xs.name) && xs.name == xn)))",
            lit_list(&self.rules.image_pull_secrets)
        );
        format!(
            "!({on_target}) ? [] : [{missing}].map(xm, size(xm) == 0 ? [] : \
             has({spec}.imagePullSecrets) \
             ? xm.map(xn, JSONPatch{{op: 'add', path: {}, value: {{'name': xn}}}}) \
             : {create})[0]",
            lit(&format!("{pointer}/imagePullSecrets/-")),
        )
    }
}
