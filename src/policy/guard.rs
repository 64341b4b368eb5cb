//! The guard: ValidatingAdmissionPolicies that see each object as it will
//! be stored, after every mutating webhook and policy, and say what is
//! still on a rewrite source. They run in the API server, so they hold
//! when the webhook is down, and they see what the policy back end leaves.
//!
//! Two rules, each its own policy for every kind so that each gets its
//! own actions: `images` (an image still on a rewrite source, which no node
//! can pull; `--deny` refuses it) and `builds` (a `command`, `args` or
//! `env` value still naming one; always a warning, since a build may push
//! internally on purpose). The images rule is the policy's own image test,
//! so the guard is silent on whatever the rules rewrote; the builds rule
//! is `Rules::named_source`, the webhook's leftover test.

use serde_json::{json, Value};

use super::expr::{lit, Exprs};
use super::{grammar, prefilter, ApiVersion};
use super::{Policy, PolicyError};
use crate::engine::rules::{Rules, SKIP_ANNOTATION};
use crate::scope::IGNORE_NAMESPACE_LABEL;

/// What a rule's binding does when the rule fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// `[Warn, Audit]`: kubectl prints the message, the audit log keeps it.
    #[default]
    Warn,
    /// `[Deny]` for images; builds stay `[Warn, Audit]`.
    DenyImages,
}

/// The guard's policies and bindings for `rules`.
pub fn render(rules: &Rules, enforcement: Enforcement) -> Result<Vec<Value>, PolicyError> {
    super::check(rules)?;
    let exprs = Exprs::new(rules);
    let policy = Policy {
        exprs: &exprs,
        rules,
    };
    let mut objects = Vec::new();
    if rules.kinds.is_empty() {
        return Ok(objects);
    }
    for rule in [GuardRule::Images, GuardRule::Builds] {
        let name = format!("registry-rewriter-guard-{}", rule.name());
        let actions = match (rule, enforcement) {
            (GuardRule::Images, Enforcement::DenyImages) => vec!["Deny"],
            _ => vec!["Warn", "Audit"],
        };
        objects.push(object(&policy, rule, &name));
        objects.push(binding(&name, &actions));
    }
    Ok(objects)
}

/// ValidatingAdmissionPolicy is GA since Kubernetes 1.30.
const API_VERSION: ApiVersion = ApiVersion::V1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardRule {
    Images,
    Builds,
}

impl GuardRule {
    fn name(self) -> &'static str {
        match self {
            GuardRule::Images => "images",
            GuardRule::Builds => "builds",
        }
    }
}

fn labels() -> Value {
    json!({"app.kubernetes.io/name": "registry-rewriter", "app.kubernetes.io/component": "guard"})
}

fn binding(name: &str, actions: &[&str]) -> Value {
    json!({
        "apiVersion": API_VERSION.as_str(),
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels()},
        "spec": {"policyName": name, "validationActions": actions},
    })
}

fn object(policy: &Policy<'_>, rule: GuardRule, name: &str) -> Value {
    let (variables, validation) = match rule {
        GuardRule::Images => images(policy),
        GuardRule::Builds => builds(policy),
    };
    let (constraints, conditions) = policy.matching();
    let variables: Vec<Value> = policy
        .request_variables()
        .into_iter()
        .chain(variables)
        .map(|(name, expression)| json!({"name": name, "expression": expression}))
        .collect();
    json!({
        "apiVersion": API_VERSION.as_str(),
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            // A guard that fails to evaluate never blocks an object.
            "failurePolicy": "Ignore",
            "matchConstraints": constraints,
            "matchConditions": conditions,
            "variables": variables,
            "validations": [validation],
        },
    })
}

/// What to check, and how to opt out, after the images rule's finding.
fn images_advice() -> String {
    format!(
        " is on the plain-HTTP registry, which nodes cannot pull from, and registry-rewriter \
         did not rewrite it: check that its webhook is running (kubectl -n registry-rewriter \
         get pods) or that its MutatingAdmissionPolicies are installed (kubectl get \
         mutatingadmissionpolicies -l app.kubernetes.io/name=registry-rewriter). To opt out, \
         annotate the object {SKIP_ANNOTATION}=true or label its namespace \
         {IGNORE_NAMESPACE_LABEL}=true."
    )
}

fn builds_advice() -> String {
    format!(
        " still names the plain-HTTP registry (left as it is, or not rewritten by \
         registry-rewriter). A build that pushes there fails from CRI-O nodes; if it is \
         meant to, annotate the object {SKIP_ANNOTATION}=true."
    )
}

/// `containers[app]`, with the index when the container has no name.
const LABEL: &str = "'[' + (has(xc.name) ? xc.name : '#' + string(xi)) + ']'";

/// The finding `findings` holds first, and how many more there are.
fn message(findings: &str, advice: &str) -> String {
    format!(
        "{findings}[0] + {} + (size({findings}) > 1 ? ' (' + string(size({findings}) - 1) + ' more)' : '')",
        lit(advice)
    )
}

/// An image still on a rewrite source: the policy's own image variable.
fn images(policy: &Policy<'_>) -> (Vec<(String, String)>, Value) {
    let findings = policy.per_list(|list, offset| {
        format!(
            "{{LIST}}.transformList(xi, xc, variables.images[{offset} + xi][0] != '', \
             '{list}' + {LABEL} + '.image ' + xc.image)"
        )
    });
    let variables = vec![
        ("images".to_owned(), policy.images_variable()),
        ("unmoved".to_owned(), findings),
    ];
    let validation = json!({
        "expression": "size(variables.unmoved) == 0",
        "messageExpression": message("variables.unmoved", &images_advice()),
        "reason": "Invalid",
    });
    (variables, validation)
}

/// A value of `command`, `args` or `env` that names a rewrite source, but
/// for a registry map's key, which names it on purpose.
fn builds(policy: &Policy<'_>) -> (Vec<(String, String)>, Value) {
    let rules = policy.rules;
    let pattern = lit(&named_source_pattern(rules));
    let map_flags: Vec<String> = rules
        .builders
        .iter()
        .filter_map(|b| b.flags.registry_map_flag.as_deref())
        .map(|flag| format!("{flag}="))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let map_vars: Vec<String> = rules
        .builders
        .iter()
        .flat_map(|b| {
            b.flags
                .env_flags
                .iter()
                .filter(|(_, flag)| Some(flag.as_str()) == b.flags.registry_map_flag.as_deref())
                .map(|(name, _)| name.clone())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let names = |x: &str| format!("{x}.lowerAscii().matches({pattern})");
    let not_a_map = |x: &str, previous: &str| {
        let mut tests: Vec<String> = map_flags
            .iter()
            .map(|flag| format!("!{x}.startsWith({})", lit(flag)))
            .collect();
        tests.extend(
            map_flags
                .iter()
                .map(|flag| format!("{previous} != {}", lit(flag.trim_end_matches('=')))),
        );
        match tests.is_empty() {
            true => "true".to_owned(),
            false => tests.join(" && "),
        }
    };
    let in_list = |list: &str| {
        format!(
            "(has(xc.{list}) && xc.{list}.exists(xj, xa, {} && {}))",
            names("xa"),
            not_a_map("xa", &format!("(xj > 0 ? xc.{list}[xj - 1] : '')"))
        )
    };
    let env_is_map = match map_vars.is_empty() {
        true => "false".to_owned(),
        false => format!(
            "(has(xe.name) && xe.name in {})",
            super::expr::lit_list(&map_vars)
        ),
    };
    let container = format!(
        "({} || {} || (has(xc.env) && xc.env.exists(xe, has(xe.value) && !{env_is_map} && {})))",
        in_list("command"),
        in_list("args"),
        names("xe.value")
    );
    let considered = policy.considered();
    let mentions = prefilter::container_mentions(rules);
    let findings = policy.per_list(|list, _| {
        format!(
            "{{LIST}}.transformList(xi, xc, {considered} && {mentions} && {container}, \
             '{list}' + {LABEL})"
        )
    });
    let variables = vec![("unmoved".to_owned(), findings)];
    let validation = json!({
        "expression": "size(variables.unmoved) == 0",
        "messageExpression": message("variables.unmoved", &builds_advice()),
        "reason": "Invalid",
    });
    (variables, validation)
}

/// One RE2 pattern, on lower-cased text, for [`Rules::named_source`]: a
/// source host after a non-host character or the start, then its port
/// (leading zeros allowed) or, for a rule without one, no port.
fn named_source_pattern(rules: &Rules) -> String {
    let mut alternatives: Vec<String> = Vec::new();
    for rule in &rules.rewrites {
        let host = grammar::escape(&rule.from_host.to_ascii_lowercase());
        let alternative = match rule.from_port {
            Some(port) => format!("{host}:0*{port}(?:$|[^0-9])"),
            None => format!("{host}(?:$|[^a-z0-9._:-]|:(?:$|[^0-9]))"),
        };
        if !alternatives.contains(&alternative) {
            alternatives.push(alternative);
        }
    }
    format!("(?:^|[^a-z0-9._-])(?:{})", alternatives.join("|"))
}
