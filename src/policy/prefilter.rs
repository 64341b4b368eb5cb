//! The admission pre-filter: a CEL matchCondition, true when a container's
//! image, command, args or an env value contains a rule's source or target
//! host, ASCII case ignored. It is a necessary condition of every change:
//! the engine changes only containers whose text names a rule registry,
//! and adds pull secrets, credentials and annotations only for those
//! (`Rules::mentions_a_registry`). Where it is false, the API server calls
//! no webhook and runs no mutation. It reads with `has()` throughout, so it
//! does not fail on a partial object; if it did, `failurePolicy: Ignore`
//! skips the webhook, as an outage would.

use crate::engine::rules::Rules;

use super::expr::lit;

/// The condition's name in the webhook configuration and the policies.
pub const NAME: &str = "names-a-rule-registry";

const LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Text `x` contains one of the rules' hosts.
fn text_mentions(rules: &Rules, x: &str) -> String {
    let tests: Vec<String> = rules
        .mentioned_hosts
        .iter()
        .map(|host| format!("xl.contains({})", lit(host)))
        .collect();
    match tests.as_slice() {
        [] => "false".to_owned(),
        [one] => one.replace("xl.", &format!("{x}.lowerAscii().")),
        _ => format!("[{x}.lowerAscii()].exists(xl, {})", tests.join(" || ")),
    }
}

/// Container `xc` names a rule registry.
pub(crate) fn container_mentions(rules: &Rules) -> String {
    let each = |list: &str| {
        format!(
            "(has(xc.{list}) && xc.{list}.exists(xa, {}))",
            text_mentions(rules, "xa")
        )
    };
    format!(
        "((has(xc.image) && {}) || {} || {} || (has(xc.env) && xc.env.exists(xe, has(xe.value) && {})))",
        text_mentions(rules, "xc.image"),
        each("command"),
        each("args"),
        text_mentions(rules, "xe.value")
    )
}

/// A pod spec at `spec` has a container that names a rule registry.
fn spec_mentions(rules: &Rules, spec: &str) -> String {
    let container = container_mentions(rules);
    let lists: Vec<String> = LISTS
        .iter()
        .map(|list| format!("(has({spec}.{list}) && {spec}.{list}.exists(xc, {container}))"))
        .collect();
    lists.join(" || ")
}

/// The condition for objects whose pod spec is at `object.<path>`.
pub fn condition(rules: &Rules, path: &[&str]) -> String {
    spec_mentions(rules, &format!("object.{}", path.join(".")))
}

/// The webhook's condition: one configuration serves Pods, `kubectl debug`
/// and the template kinds, so each place a pod spec can be is tried, every
/// step guarded by `has()`.
pub fn webhook_condition(rules: &Rules) -> String {
    let places = [
        ("object.spec", vec![]),
        (
            "object.spec.template.spec",
            vec!["object.spec", "object.spec.template"],
        ),
        (
            "object.spec.jobTemplate.spec.template.spec",
            vec![
                "object.spec",
                "object.spec.jobTemplate",
                "object.spec.jobTemplate.spec",
                "object.spec.jobTemplate.spec.template",
            ],
        ),
    ];
    let parts: Vec<String> = places
        .iter()
        .map(|(spec, parents)| {
            let guards: Vec<String> = parents
                .iter()
                .chain(std::iter::once(spec))
                .map(|p| format!("has({p})"))
                .collect();
            format!(
                "({} && ({}))",
                guards.join(" && "),
                spec_mentions(rules, spec)
            )
        })
        .collect();
    parts.join(" || ")
}
