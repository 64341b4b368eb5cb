//! The admission pre-filter: a CEL matchCondition, true when a container
//! could give the engine something to do. It is a necessary condition of
//! every change (`Rules::mentions_a_registry`): the engine changes only
//! containers whose image, command, args or an env value names a rule's
//! source or target host, ASCII case ignored. Where a container names a
//! target in its image alone, it is sent only when the pod spec lacks a
//! pull secret or the container has a flag the engine removes: a Pod the
//! policy has rewritten is not evaluated again on reinvocation. Where it
//! is false, the API server calls no webhook and runs no mutation. It reads
//! with `has()` throughout, so it does not fail on a partial object; if it
//! did, `failurePolicy: Ignore` skips the webhook, as an outage would.

use crate::engine::rules::{minimal_hosts, minimal_texts, Rules};

use super::expr::lit;
use super::LISTS;

/// The condition's name in the webhook configuration and the policies.
pub const NAME: &str = "names-a-rule-registry";

/// `test` on text `x` lower-cased, once for all of its `tests` host tests.
fn lowered(x: &str, tests: usize, test: impl Fn(&str) -> String) -> String {
    match tests {
        0 => "false".to_owned(),
        1 => test(&format!("{x}.lowerAscii()")),
        _ => format!("[{x}.lowerAscii()].exists(xl, {})", test("xl")),
    }
}

fn contains_any(text: &str, hosts: &[String]) -> String {
    let tests: Vec<String> = hosts
        .iter()
        .map(|host| format!("{text}.contains({})", lit(host)))
        .collect();
    tests.join(" || ")
}

/// Text `x` contains one of the rules' hosts.
fn text_mentions(rules: &Rules, x: &str) -> String {
    let hosts = &rules.mentioned_hosts;
    lowered(x, hosts.len(), |text| contains_any(text, hosts))
}

/// Container `xc` names a rule registry.
pub(crate) fn container_mentions(rules: &Rules) -> String {
    container_test(rules, text_mentions(rules, "xc.image"))
}

/// `xc` names a rule registry in its command, args or env, or `image`
/// holds.
fn container_test(rules: &Rules, image: String) -> String {
    let each = |list: &str| {
        format!(
            "(has(xc.{list}) && xc.{list}.exists(xa, {}))",
            text_mentions(rules, "xa")
        )
    };
    format!(
        "((has(xc.image) && {image}) || {} || {} || (has(xc.env) && xc.env.exists(xe, has(xe.value) && {})))",
        each("command"),
        each("args"),
        text_mentions(rules, "xe.value")
    )
}

/// Container `xc` of the pod spec at `spec` may be changed: it names a
/// rule registry in its command, args or env, or its image names a source,
/// or a target while `spec` lacks a pull secret or `xc` has a flag that a
/// builder's profile removes (a builder's image may be on a target).
fn container_may_change(rules: &Rules, spec: &str) -> String {
    let sources = minimal_hosts(rules.rewrites.iter().map(|r| &r.from_host));
    let targets = minimal_hosts(rules.rewrites.iter().map(|r| &r.to_host));
    let mut something_to_add: Vec<String> = rules
        .image_pull_secrets()
        .iter()
        .map(|name| {
            format!(
                "!(has({spec}.imagePullSecrets) && {spec}.imagePullSecrets.exists(xp, has(xp.name) && xp.name == {}))",
                lit(name)
            )
        })
        .collect();
    // `--insecure` is in `--insecure-pull`: only the shortest are tested.
    let removed = minimal_texts(
        rules
            .builders
            .iter()
            .flat_map(|b| b.flags.remove_flags.iter().cloned()),
    );
    if !removed.is_empty() {
        let tests: Vec<String> = removed
            .iter()
            .map(|flag| format!("xa.contains({})", lit(flag)))
            .collect();
        let any = tests.join(" || ");
        for list in ["command", "args"] {
            something_to_add.push(format!("(has(xc.{list}) && xc.{list}.exists(xa, {any}))"));
        }
    }
    let image = if something_to_add.is_empty() {
        lowered("xc.image", sources.len(), |text| {
            contains_any(text, &sources)
        })
    } else {
        lowered("xc.image", sources.len() + targets.len(), |text| {
            format!(
                "{} || (({}) && ({}))",
                contains_any(text, &sources),
                contains_any(text, &targets),
                something_to_add.join(" || ")
            )
        })
    };
    container_test(rules, image)
}

/// A pod spec at `spec` has a container that may be changed.
fn spec_mentions(rules: &Rules, spec: &str) -> String {
    let container = container_may_change(rules, spec);
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
