//! Registry-valued arguments: a flag's image or location, an image
//! argument (`docker://` allowed), and BuildKit CSV; each parsed once and
//! rewritten when a rule matches.

use std::borrow::Cow;

use super::csv;
use super::run::{Role, Run};
use super::walker::Value;
use super::TRANSPORTS;
use crate::engine::explain::{shown, ChangeKind};
use crate::engine::rewrite_reference;
use crate::reference::{ImageRef, Location};

/// The CSV keys whose values are image references.
const CSV_IMAGE_KEYS: &[&str] = &["name", "ref"];
/// The CSV field that lets BuildKit push over plain HTTP.
const CSV_INSECURE: (&str, &str) = ("registry.insecure", "true");

impl<'a> Run<'_, 'a, '_> {
    /// Rewrites a flag's value if a rule matches. Returns whether the value
    /// now names a rewrite target.
    pub(super) fn rewrite_value(&mut self, role: Role, flag: &str, value: Value<'a>) -> bool {
        match self.rewritten(role, flag, value.text) {
            Rewritten::To(new_value) => {
                self.replace_value(flag, value, &new_value, value.text);
                true
            }
            Rewritten::Unchanged { on_target } => on_target,
        }
    }

    pub(super) fn replace_value(
        &mut self,
        flag: &str,
        value: Value<'a>,
        new_value: &str,
        old_shown: &str,
    ) {
        let target = &self.args[value.at];
        let new_text = match value.inline_prefix {
            Some(prefix) => format!("{prefix}{new_value}"),
            None => new_value.to_owned(),
        };
        let message = format!(
            "{}: {flag} {} -> {}",
            self.field(target.list),
            shown(old_shown),
            shown(new_value)
        );
        self.patch.explain(ChangeKind::BuildArg, message);
        self.edits.replace(target, new_text);
        self.changed = true;
    }

    /// Parses a value once, as an image reference or a registry location,
    /// and rewrites it if a rule matches. A value that does not parse is
    /// left alone, with a warning.
    pub(super) fn rewritten(&mut self, role: Role, flag: &str, value: &str) -> Rewritten {
        let (parsed, expected) = match role {
            Role::Location => (
                Location::parse(value).map(|l| {
                    let rewritten = self
                        .rules
                        .find_rule(&l.domain, l.path.unwrap_or(""))
                        .map(|(rule, rest)| rule.rewrite_name(rest));
                    (Some(l.domain), rewritten)
                }),
                "a registry location",
            ),
            _ => (
                ImageRef::parse(value).map(|r| (r.domain, rewrite_reference(&r, self.rules))),
                "a valid image reference",
            ),
        };
        match parsed {
            Ok((_, Some(new_value))) => Rewritten::To(new_value),
            Ok((domain, None)) => Rewritten::Unchanged {
                on_target: domain.is_some_and(|d| self.rules.is_rewrite_target(&d)),
            },
            Err(e) => {
                self.patch.warn(format!(
                    "{}: {flag} left unchanged, {:?} is not {expected}: {e}",
                    self.at.label(),
                    shown(value)
                ));
                Rewritten::Unchanged { on_target: false }
            }
        }
    }

    /// A registry map, `key=mirror[,mirror...][;key=...]` as Kaniko's
    /// `--registry-map` reads it: keys are recorded as mapped, and every
    /// mirror on a rewrite source moves to its target. The new text, when
    /// a mirror moved.
    pub(super) fn rewritten_map(&mut self, text: &'a str) -> Option<String> {
        let mut changed = false;
        let mut maps = Vec::new();
        for map in text.split(';') {
            let Some((key, mirrors)) = map.split_once('=') else {
                maps.push(Cow::Borrowed(map));
                continue;
            };
            self.mapped.push(key);
            let mut new_mirrors = Vec::new();
            for mirror in mirrors.split(',') {
                // A mirror that does not parse names no registry: kept.
                let (new_mirror, on_target) = match Location::parse(mirror) {
                    Ok(l) => match self.rules.find_rule(&l.domain, l.path.unwrap_or("")) {
                        Some((rule, rest)) => (Some(rule.rewrite_name(rest)), true),
                        None => (None, self.rules.is_rewrite_target(&l.domain)),
                    },
                    Err(_) => (None, false),
                };
                // Base images pulled from a rewrite target.
                self.reaches_target |= on_target;
                changed |= new_mirror.is_some();
                new_mirrors.push(new_mirror.map_or(Cow::Borrowed(mirror), Cow::Owned));
            }
            maps.push(Cow::Owned(format!("{key}={}", new_mirrors.join(","))));
        }
        changed.then(|| maps.join(";"))
    }

    /// An image argument, with or without the `docker://` transport; other
    /// transports name no registry and are left alone.
    pub(super) fn rewrite_image_argument(&mut self, subcommand: &str, at: usize) -> bool {
        let arg = self.args[at];
        let (transport, reference) = match TRANSPORTS.iter().find(|t| arg.text.starts_with(**t)) {
            Some(&"docker://") => ("docker://", &arg.text["docker://".len()..]),
            Some(_) => return false,
            None => ("", arg.text),
        };
        match self.rewritten(Role::Image, subcommand, reference) {
            Rewritten::To(new_reference) => {
                let value = Value {
                    text: arg.text,
                    at,
                    inline_prefix: None,
                };
                let new_text = format!("{transport}{new_reference}");
                self.replace_value(subcommand, value, &new_text, arg.text);
                true
            }
            Rewritten::Unchanged { on_target } => on_target,
        }
    }

    /// BuildKit CSV: every `name=`/`ref=` image on the internal registry is
    /// rewritten, and `registry.insecure=true` goes once every one of them
    /// is on the HTTPS registry. Other fields keep their text, quotes
    /// included; a value BuildKit could not read is left alone.
    pub(super) fn rewrite_csv(&mut self, flag: &str, value: Value<'a>) {
        let fields = match csv::fields(value.text) {
            Ok(fields) => fields,
            Err(e) => {
                self.patch.warn(format!(
                    "{}: {flag} left unchanged, {:?} is not the CSV BuildKit reads: {e}",
                    self.at.label(),
                    shown(value.text)
                ));
                return;
            }
        };
        let mut texts: Vec<Cow<'a, str>> = fields.iter().map(|f| Cow::Borrowed(f.raw)).collect();
        let (mut any_image, mut all_on_target) = (false, true);
        let mut insecure = None;
        let mut lines = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let Some((key, names)) = field.value.split_once('=') else {
                continue;
            };
            let key_lower = key.to_ascii_lowercase();
            if (key_lower.as_str(), names) == CSV_INSECURE {
                insecure = Some(i);
                continue;
            }
            if !CSV_IMAGE_KEYS.contains(&key_lower.as_str()) {
                continue;
            }
            let mut new_names = Vec::new();
            let mut field_changed = false;
            for name in names.split(',') {
                any_image = true;
                match self.rewritten(Role::Image, flag, name) {
                    Rewritten::To(new_name) => {
                        lines.push((format!("{key}={name}"), format!("{key}={new_name}")));
                        new_names.push(Cow::Owned(new_name));
                        field_changed = true;
                    }
                    Rewritten::Unchanged { on_target } => {
                        all_on_target &= on_target;
                        new_names.push(Cow::Borrowed(name));
                    }
                }
            }
            if field_changed {
                let new_value = format!("{key}={}", new_names.join(","));
                texts[i] = Cow::Owned(csv::encode(&new_value, field.quoted));
            }
        }
        self.pushes_to_target |= any_image && all_on_target;
        let drop_insecure = insecure.filter(|_| any_image && all_on_target);
        if let Some(i) = drop_insecure {
            texts.remove(i);
        }
        if lines.is_empty() && drop_insecure.is_none() {
            return;
        }
        let new_value = texts.join(",");
        let target = &self.args[value.at];
        let list = target.list;
        let new_text = match value.inline_prefix {
            Some(prefix) => format!("{prefix}{new_value}"),
            None => new_value,
        };
        self.edits.replace(target, new_text);
        self.changed = true;
        for (old, new) in lines {
            let message = format!(
                "{}: {flag} {} -> {}",
                self.field(list),
                shown(&old),
                shown(&new)
            );
            self.patch.explain(ChangeKind::BuildArg, message);
        }
        if drop_insecure.is_some() {
            let message = format!(
                "{}: {flag}: removed registry.insecure=true (the registry is now reached over HTTPS)",
                self.field(list)
            );
            self.patch.explain(ChangeKind::BuildFlagRemoved, message);
        }
    }
}

/// What a registry-valued value becomes.
pub(super) enum Rewritten {
    To(String),
    /// Left as it is; `on_target` when it already names a rewrite target.
    Unchanged {
        on_target: bool,
    },
}
