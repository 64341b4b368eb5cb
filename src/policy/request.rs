//! The request as the policy and the guard read it: which kinds they
//! match, where the request's kind has its pod spec, and which containers
//! are looked at. One policy serves every kind and `kubectl debug`, since
//! the API server compiles each policy, and the builder walk is most of
//! what it compiles.

use serde_json::{json, Value};

use super::expr::{lit, lit_list};
use super::{namespace_selector, not_skipped_condition, prefilter, Policy, LISTS};
use crate::engine::Workload;

/// The request's pod spec, the JSON pointer to it, and whether the request
/// is `kubectl debug` adding ephemeral containers: the variables every
/// expression reads them from ([`Policy::request_variables`]).
pub(super) const SPEC: &str = "variables.spec";
pub(super) const AT: &str = "variables.at";
pub(super) const EPHEMERAL: &str = "variables.ephemeral";

impl Policy<'_> {
    /// `value` of the request's kind; the last kind needs no test.
    pub(super) fn by_kind(&self, value: impl Fn(&Workload) -> String) -> String {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for workload in &self.rules.kinds {
            let text = value(workload);
            match groups.iter_mut().find(|(t, _)| *t == text) {
                Some((_, kinds)) => kinds.push(workload.kind),
                None => groups.push((text, vec![workload.kind])),
            }
        }
        let Some(((last, _), rest)) = groups.split_last() else {
            return "false".to_owned();
        };
        let mut chain = String::new();
        for (text, kinds) in rest {
            chain.push_str(&format!(
                "request.kind.kind in {} ? {text} : ",
                lit_list(kinds)
            ));
        }
        format!("({chain}{last})")
    }

    /// `matchConstraints` and `matchConditions`: the requests the webhook
    /// gets, its exclusions, and the pre-filter. The guard matches alike.
    pub(super) fn matching(&self) -> (Value, Value) {
        let rule = |group: &str, operation: &str, resource: String| {
            json!({
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": [operation],
                "resources": [resource],
                "scope": "Namespaced",
            })
        };
        let mut resource_rules: Vec<Value> = self
            .rules
            .kinds
            .iter()
            .map(|w| rule(w.group, "CREATE", w.resource.to_owned()))
            .collect();
        if let Some(pods) = self.rules.kinds.iter().find(|w| w.kind == "Pod") {
            resource_rules.push(rule(
                pods.group,
                "UPDATE",
                format!("{}/ephemeralcontainers", pods.resource),
            ));
        }
        let constraints = json!({
            "resourceRules": resource_rules,
            "namespaceSelector": namespace_selector(),
        });
        let prefilter = self.by_kind(|w| prefilter::condition(self.rules, w.pod_spec_path));
        let conditions = json!([
            {"name": "not-skipped", "expression": not_skipped_condition()},
            {"name": prefilter::NAME, "expression": prefilter},
        ]);
        (constraints, conditions)
    }

    /// `spec`, `at` and `ephemeral` (see [`SPEC`]).
    pub(super) fn request_variables(&self) -> Vec<(String, String)> {
        vec![
            (
                "spec".into(),
                self.by_kind(|w| format!("object.{}", w.pod_spec_path.join("."))),
            ),
            (
                "at".into(),
                self.by_kind(|w| lit(&format!("/{}", w.pod_spec_path.join("/")))),
            ),
            // The one UPDATE the policy matches.
            ("ephemeral".into(), "request.operation == 'UPDATE'".into()),
        ]
    }

    /// `list` is in the pod spec and is looked at: `kubectl debug` adds
    /// ephemeral containers only.
    fn present(list: &str) -> String {
        match list {
            "ephemeralContainers" => format!("has({SPEC}.{list})"),
            _ => format!("(!{EPHEMERAL} && has({SPEC}.{list}))"),
        }
    }

    /// Which containers the policy looks at, as a condition on `xc`: of
    /// `kubectl debug`, the ephemeral containers `oldObject` has not yet.
    pub(super) fn considered(&self) -> &'static str {
        "(!variables.ephemeral || !has(xc.name) || !(has(oldObject.spec.ephemeralContainers) && oldObject.spec.ephemeralContainers.exists(xo, has(xo.name) && xo.name == xc.name)))"
    }

    /// Every container this policy looks at, as one list (`containers`,
    /// then `initContainers`, then `ephemeralContainers`).
    pub(super) fn all_containers(&self) -> String {
        let lists: Vec<String> = LISTS
            .iter()
            .map(|list| format!("({} ? {SPEC}.{list} : [])", Self::present(list)))
            .collect();
        lists.join(" + ")
    }

    /// Where `list` starts in [`Self::all_containers`].
    pub(super) fn offset(&self, list: &str) -> String {
        let before: Vec<String> = LISTS
            .iter()
            .take_while(|l| **l != list)
            .map(|l| format!("({} ? size({SPEC}.{l}) : 0)", Self::present(l)))
            .collect();
        if before.is_empty() {
            "0".to_owned()
        } else {
            before.join(" + ")
        }
    }

    /// The JSON pointer to `list`'s items, as CEL.
    pub(super) fn pointer(&self, list: &str) -> String {
        format!("{AT} + {}", lit(&format!("/{list}/")))
    }

    /// `part(list, offset)` for every list the object has, concatenated;
    /// `{LIST}` in a part stands for the list.
    pub(super) fn per_list(&self, part: impl Fn(&str, &str) -> String) -> String {
        let lists: Vec<String> = LISTS
            .iter()
            .map(|list| {
                let text =
                    part(list, &self.offset(list)).replace("{LIST}", &format!("{SPEC}.{list}"));
                format!("({} ? {text} : [])", Self::present(list))
            })
            .collect();
        lists.join(" +\n")
    }
}
