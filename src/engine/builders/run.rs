//! One builder invocation's arguments, walked once: each flag's role
//! decides what happens to it (rewritten, removed, kept), and what the
//! build reaches decides whether `--tls-verify=false` may go.

use super::env::EnvVar;
use super::field;
use super::walker::{walk, Arg, Flag, Item, List, Value};
use crate::engine::explain::{shown, ChangeKind};
use crate::engine::patch::{ListEdits, PatchBuilder};
use crate::engine::rules::{BuilderProfile, Rules};
use crate::engine::ContainerAt;
use crate::reference::Domain;

/// Rewriting one invocation's arguments.
pub(super) struct Run<'x, 'a, 'r> {
    pub(super) at: &'x ContainerAt<'x>,
    pub(super) profile: &'r BuilderProfile,
    pub(super) args: &'x [Arg<'a>],
    pub(super) rules: &'r Rules,
    pub(super) patch: &'x mut PatchBuilder,
    pub(super) edits: Edits,
    /// Something was rewritten or removed.
    pub(super) changed: bool,
    /// An image the build pushes names a rewrite target.
    pub(super) pushes_to_target: bool,
    /// An image argument names a rewrite target (`buildah push`, `pull`,
    /// `from`), or a registry map sends pulls to one.
    pub(super) reaches_target: bool,
    /// Every flag the walk read, for the credential step.
    pub(super) flags_seen: Vec<&'a str>,
    /// Registries the build already maps (`--registry-map` keys).
    pub(super) mapped: Vec<&'a str>,
    /// `field()` for `command` and `args`, once each.
    pub(super) fields: [Option<String>; 2],
}

/// What a flag means to a profile.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Image,
    Location,
    Csv,
    Remove,
    RemoveRegistry,
    TlsVerify,
    RegistryMap,
    Other,
}

impl<'x, 'a, 'r> Run<'x, 'a, 'r> {
    pub(super) fn role(&self, name: &str) -> Role {
        let p = self.profile;
        let is = |list: &[String]| list.iter().any(|f| f == name);
        if is(&p.flags.image_flags) {
            Role::Image
        } else if is(&p.flags.location_flags) {
            Role::Location
        } else if is(&p.flags.csv_flags) {
            Role::Csv
        } else if is(&p.flags.remove_flags) {
            Role::Remove
        } else if is(&p.flags.remove_registry_flags) {
            Role::RemoveRegistry
        } else if p.flags.tls_verify_flag.as_deref() == Some(name) {
            Role::TlsVerify
        } else if p.flags.registry_map_flag.as_deref() == Some(name) {
            Role::RegistryMap
        } else {
            Role::Other
        }
    }

    fn takes_value(&self, name: &str) -> bool {
        match self.role(name) {
            Role::Remove | Role::TlsVerify => false,
            Role::Other => self.profile.flags.value_flags.iter().any(|f| f == name),
            _ => true,
        }
    }

    /// Where a change is, worked out once per list.
    pub(super) fn field(&mut self, list: List) -> String {
        let slot = match list {
            List::Command => &mut self.fields[0],
            List::Args => &mut self.fields[1],
        };
        slot.get_or_insert_with(|| field(self.at, self.profile, list))
            .clone()
    }

    pub(super) fn rewrite(&mut self, env: &[EnvVar<'a>]) {
        let items = walk(self.args, |name| self.takes_value(name));
        self.flags_seen = items
            .iter()
            .filter_map(|item| match item {
                Item::Flag(flag) => Some(flag.name),
                Item::Positional(_) => None,
            })
            .collect();
        let subcommand = self.subcommand(&items);
        if !self.profile.subcommands.is_empty() && subcommand.is_none() {
            return;
        }
        self.rewrite_env(env);
        let mut tls_verify_off: Vec<Flag<'a>> = Vec::new();
        let mut positionals = Vec::new();
        for item in &items {
            match *item {
                Item::Positional(at) => positionals.push(at),
                Item::Flag(flag) => match (self.role(flag.name), flag.value) {
                    (Role::Remove, _) => self.remove_flag(&flag),
                    (role @ (Role::Image | Role::Location), Some(value)) => {
                        self.pushes_to_target |= self.rewrite_value(role, flag.name, value);
                    }
                    (Role::Csv, Some(value)) => self.rewrite_csv(flag.name, value),
                    (Role::RemoveRegistry, Some(value)) => self.remove_registry_flag(&flag, value),
                    (Role::TlsVerify, Some(value)) if is_false(value.text) => {
                        tls_verify_off.push(flag);
                    }
                    (Role::RegistryMap, Some(value)) => {
                        if let Some(new_value) = self.rewritten_map(value.text) {
                            self.replace_value(flag.name, value, &new_value, value.text);
                        }
                    }
                    _ => {}
                },
            }
        }
        // Only where every image the command reaches is on its command line
        // can the TLS exception go; `bud` also pulls the base images of a
        // Containerfile, which the webhook cannot see.
        let mut reaches_only_https = false;
        if let Some(subcommand) =
            subcommand.filter(|s| self.profile.image_arguments.iter().any(|a| a == s))
        {
            // The first positional is the subcommand. With several image
            // arguments (`push SRC DEST`), the last is the one reached over
            // the network.
            let images = positionals.get(1..).unwrap_or_default();
            for (i, at) in images.iter().enumerate() {
                let on_target = self.rewrite_image_argument(subcommand, *at);
                self.reaches_target |= on_target;
                if i + 1 == images.len() {
                    reaches_only_https = on_target;
                }
            }
        }
        // Every `--tls-verify=false` goes, not only the one pflag reads:
        // otherwise the next one would go in the next round.
        for flag in &tls_verify_off {
            self.settle_tls_verify(flag, reaches_only_https);
        }
    }

    /// The subcommand, when the profile has any and the first positional
    /// argument is one of them.
    fn subcommand(&self, items: &[Item<'a>]) -> Option<&'r str> {
        if self.profile.subcommands.is_empty() {
            return None;
        }
        let first = items.iter().find_map(|item| match item {
            Item::Positional(at) => Some(self.args[*at].text),
            Item::Flag(_) => None,
        })?;
        self.profile
            .subcommands
            .iter()
            .find(|s| *s == first)
            .map(String::as_str)
    }

    /// Removes a boolean TLS-weakening flag, and says so.
    pub(super) fn remove_flag(&mut self, flag: &Flag<'a>) {
        let arg = &self.args[flag.at];
        self.edits.remove(arg);
        self.changed = true;
        let message = format!(
            "{}: removed {} (the HTTPS registry needs no TLS exception)",
            self.field(arg.list),
            shown(arg.text)
        );
        self.patch.explain(ChangeKind::BuildFlagRemoved, message);
    }

    fn remove_registry_flag(&mut self, flag: &Flag<'a>, value: Value<'a>) {
        let names_rewritten = Domain::parse(value.text.split('/').next().unwrap_or(value.text))
            .is_ok_and(|d| self.rules.is_rewrite_source(&d));
        if !names_rewritten {
            return;
        }
        let arg = &self.args[flag.at];
        self.edits.remove(arg);
        if value.inline_prefix.is_none() {
            self.edits.remove(&self.args[value.at]);
        }
        self.changed = true;
        let message = format!(
            "{}: removed {} {} (the registry is now reached over HTTPS)",
            self.field(arg.list),
            flag.name,
            shown(value.text)
        );
        self.patch.explain(ChangeKind::BuildFlagRemoved, message);
    }

    /// `--tls-verify=false`: removed where every registry the command
    /// reaches is now HTTPS; otherwise kept, and said so when the build
    /// was rewritten.
    fn settle_tls_verify(&mut self, flag: &Flag<'a>, all_on_target: bool) {
        let arg = self.args[flag.at];
        if all_on_target {
            self.remove_flag(flag);
        } else if self.changed {
            let warning = format!(
                "{}: kept {}: the command also reaches images that are not on the HTTPS registry \
                 (such as the base images of a Containerfile, which the webhook cannot see)",
                self.field(arg.list),
                shown(arg.text)
            );
            self.patch.warn(warning);
        }
    }
}

/// pflag's false values.
fn is_false(text: &str) -> bool {
    matches!(text, "false" | "FALSE" | "False" | "f" | "F" | "0")
}

#[derive(Default)]
pub(super) struct Edits {
    pub(super) command: ListEdits,
    pub(super) args: ListEdits,
}

impl Edits {
    pub(super) fn list(&mut self, list: List) -> &mut ListEdits {
        match list {
            List::Command => &mut self.command,
            List::Args => &mut self.args,
        }
    }

    pub(super) fn remove(&mut self, arg: &Arg<'_>) {
        self.list(arg.list).removed.push(arg.index);
    }

    pub(super) fn replace(&mut self, arg: &Arg<'_>, text: String) {
        self.list(arg.list).replaced.push((arg.index, text));
    }
}
