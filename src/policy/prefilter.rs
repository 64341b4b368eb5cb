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
use super::LISTS;

/// The condition's name in the webhook configuration and the policies.
pub const NAME: &str = "names-a-rule-registry";

/// Text `x` contains one of the rules' hosts.
fn text_mentions(rules: &Rules, x: &str) -> String {
    let contains_a_host = |text: &str| {
        let tests: Vec<String> = rules
            .mentioned_hosts
            .iter()
            .map(|host| format!("{text}.contains({})", lit(host)))
            .collect();
        tests.join(" || ")
    };
    match rules.mentioned_hosts.len() {
        0 => "false".to_owned(),
        1 => contains_a_host(&format!("{x}.lowerAscii()")),
        // Lower-cased once for all the hosts.
        _ => format!("[{x}.lowerAscii()].exists(xl, {})", contains_a_host("xl")),
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
    let specs = [
        "spec",
        "spec.template.spec",
        "spec.jobTemplate.spec.template.spec",
    ];
    let parts: Vec<String> = specs
        .iter()
        .map(|spec| {
            // `has()` of every field on the way: `object.spec`, then
            // `object.spec.template`, and so on.
            let fields: Vec<&str> = spec.split('.').collect();
            let guards: Vec<String> = (1..=fields.len())
                .map(|n| format!("has(object.{})", fields[..n].join(".")))
                .collect();
            let at = format!("object.{spec}");
            format!(
                "({} && ({}))",
                guards.join(" && "),
                spec_mentions(rules, &at)
            )
        })
        .collect();
    parts.join(" || ")
}
