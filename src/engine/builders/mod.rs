//! Image builds run in containers: which builder a container runs, directly
//! or as the program of a CI engine's step wrapper (Tekton, Argo
//! Workflows), and its arguments rewritten by that builder's profile.
//!
//! Every profile shares one argument walker (`walker`). A flag's role comes
//! from the profile: an image reference, a registry location, BuildKit CSV
//! (`csv`), a TLS-weakening flag to remove, a registry map to add. Every
//! other argument keeps its value and its place.

mod csv;
mod walker;

use std::borrow::Cow;

use super::explain::{shown, ChangeKind};
use super::patch::{ListEdits, PatchBuilder};
use super::rules::{BuilderProfile, Rules, Wrapper, IMAGE_TRANSPORTS as TRANSPORTS};
use super::view::{ContainerView, JsonStr};
use super::{rewrite_reference, ContainerAt};
use crate::reference::{Domain, ImageRef, Location};
use walker::{walk, Arg, Flag, Item, List, Value};

/// The CSV keys whose values are image references.
const CSV_IMAGE_KEYS: &[&str] = &["name", "ref"];
/// The CSV field that lets BuildKit push over plain HTTP.
const CSV_INSECURE: (&str, &str) = ("registry.insecure", "true");

/// A builder found in a container: its profile, its arguments, and where
/// flags it did not have go (right after the program, before its own
/// arguments).
struct Invocation<'a, 'r> {
    profile: &'r BuilderProfile,
    args: Vec<Arg<'a>>,
    insert_at: InsertAt,
}

/// Where new flags go: a list, and the index to insert at (`None`: a list
/// that does not exist yet).
type InsertAt = (List, Option<usize>);

/// A program as a container runs it: directly, or under a wrapper.
struct Program<'a> {
    executable: &'a str,
    args: Vec<Arg<'a>>,
    insert_at: InsertAt,
}

pub(crate) fn rewrite(
    at: &ContainerAt<'_>,
    container: &ContainerView<'_>,
    image: Option<&ImageRef<'_>>,
    rules: &Rules,
    patch: &mut PatchBuilder,
) {
    let Some(invocation) = find(at, container, image, rules, patch) else {
        return;
    };
    let mut run = Run {
        at,
        profile: invocation.profile,
        args: &invocation.args,
        rules,
        patch,
        edits: Edits::default(),
        changed: false,
        pushes_to_target: false,
        mapped: Vec::new(),
        fields: [None, None],
    };
    run.rewrite();
    let (list, index) = invocation.insert_at;
    let mut edits = run.edits;
    if run.changed || run.pushes_to_target {
        let maps = registry_maps(at, run.profile, &run.mapped, list, rules, run.patch);
        let list_edits = edits.list(list);
        list_edits.appended = maps;
        list_edits.insert_before = index;
    }
    if !edits.command.is_empty() {
        patch.edit_list(at, "command", true, std::mem::take(&mut edits.command));
    }
    if !edits.args.is_empty() {
        patch.edit_list(at, "args", container.args.is_some(), edits.args);
    }
}

/// Finds the builder a container runs, if any. A builder's image running
/// something else (a shell script, say) hides the build's flags, so it is
/// left alone with a warning.
fn find<'a, 'r>(
    at: &ContainerAt<'_>,
    container: &'a ContainerView<'a>,
    image: Option<&ImageRef<'_>>,
    rules: &'r Rules,
    patch: &mut PatchBuilder,
) -> Option<Invocation<'a, 'r>> {
    let command = container.command.as_deref().unwrap_or_default();
    let image_builder = image.and_then(|image| rules.builder_for_image(image));
    let wrapper = command.first().and_then(|first| rules.wrapper_for(first));
    let direct = command
        .first()
        .and_then(|first| rules.builder_for_executable(first));
    // Most containers run no builder: nothing more to read.
    if image_builder.is_none() && wrapper.is_none() && direct.is_none() {
        return None;
    }
    let mut all: Vec<Arg<'a>> = args_of(command, List::Command);
    all.extend(args_of(
        container.args.as_deref().unwrap_or_default(),
        List::Args,
    ));
    let Some(first) = command.first() else {
        // No command: the image's own entrypoint, which is the builder's.
        let profile = image_builder?;
        return Some(Invocation {
            profile,
            args: all,
            insert_at: (List::Args, container.args.is_some().then_some(0)),
        });
    };
    let (program, profile) = match wrapper {
        Some(wrapper) => {
            let program = unwrap(wrapper, &all[1..])?;
            let profile = rules.builder_for_executable(program.executable);
            (program, profile)
        }
        None => {
            let program = Program {
                executable: first,
                args: all[1..].to_vec(),
                insert_at: (List::Command, Some(1)),
            };
            (program, direct)
        }
    };
    match profile {
        Some(profile) => Some(Invocation {
            profile,
            args: program.args,
            insert_at: program.insert_at,
        }),
        None => {
            if let Some(profile) = image_builder {
                patch.warn(format!(
                    "{}: {} image runs {:?}, not the builder; its arguments were left unchanged",
                    at.label(),
                    display_name(&profile.name),
                    shown(program.executable)
                ));
            }
            None
        }
    }
}

fn args_of<'a>(texts: &'a [JsonStr<'a>], list: List) -> Vec<Arg<'a>> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| Arg { list, index, text })
        .collect()
}

/// The program a wrapper runs, its arguments (after the wrapper's `--`), and
/// where new flags for the program go. `None` when the wrapper's arguments
/// do not have that shape.
fn unwrap<'a>(wrapper: &Wrapper, args: &[Arg<'a>]) -> Option<Program<'a>> {
    let args = match (&wrapper.subcommand, args.split_first()) {
        (None, _) => args,
        (Some(subcommand), Some((first, rest))) if first.text == subcommand => rest,
        (Some(_), _) => return None,
    };
    let separator = args.iter().position(|a| a.text == "--")?;
    let (own, after) = (&args[..separator], &args[separator + 1..]);
    match &wrapper.executable_flag {
        Some(flag) => {
            let program = own.iter().enumerate().rev().find_map(|(i, arg)| {
                let name = arg.text.trim_start_matches('-');
                let wanted = flag.trim_start_matches('-');
                match name.split_once('=') {
                    Some((name, value)) if name == wanted => Some(value),
                    None if name == wanted => own.get(i + 1).map(|v| v.text),
                    _ => None,
                }
            })?;
            let separator_at = &args[separator];
            Some(Program {
                executable: program,
                args: after.to_vec(),
                insert_at: (separator_at.list, Some(separator_at.index + 1)),
            })
        }
        None => {
            let (program, rest) = after.split_first()?;
            Some(Program {
                executable: program.text,
                args: rest.to_vec(),
                insert_at: (program.list, Some(program.index + 1)),
            })
        }
    }
}

/// `containers[build].args (buildkit)`: where a change is, and by which
/// builder. Kaniko's lines keep the form they had before other builders
/// existed.
fn field(at: &ContainerAt<'_>, profile: &BuilderProfile, list: List) -> String {
    match profile.name.as_str() {
        "kaniko" => format!("{}.{}", at.label(), list.field()),
        name => format!("{}.{} ({name})", at.label(), list.field()),
    }
}

fn display_name(name: &str) -> &str {
    match name {
        "kaniko" => "Kaniko",
        other => other,
    }
}

/// Rewriting one invocation's arguments.
struct Run<'x, 'a, 'r> {
    at: &'x ContainerAt<'x>,
    profile: &'r BuilderProfile,
    args: &'x [Arg<'a>],
    rules: &'r Rules,
    patch: &'x mut PatchBuilder,
    edits: Edits,
    /// Something was rewritten or removed.
    changed: bool,
    /// An image the build pushes names a rewrite target.
    pushes_to_target: bool,
    /// Registries the build already maps (`--registry-map` keys).
    mapped: Vec<&'a str>,
    /// `field()` for `command` and `args`, once each.
    fields: [Option<String>; 2],
}

/// What a flag means to a profile.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
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
    fn role(&self, name: &str) -> Role {
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
    fn field(&mut self, list: List) -> String {
        let slot = match list {
            List::Command => &mut self.fields[0],
            List::Args => &mut self.fields[1],
        };
        slot.get_or_insert_with(|| field(self.at, self.profile, list))
            .clone()
    }

    fn rewrite(&mut self) {
        let items = walk(self.args, |name| self.takes_value(name));
        let subcommand = self.subcommand(&items);
        if !self.profile.subcommands.is_empty() && subcommand.is_none() {
            return;
        }
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
                    (Role::RegistryMap, Some(value)) => self.mapped.extend(
                        value
                            .text
                            .split(';')
                            .filter_map(|m| m.split_once('='))
                            .map(|(key, _)| key),
                    ),
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
    fn remove_flag(&mut self, flag: &Flag<'a>) {
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

    /// Rewrites a flag's value if a rule matches. Returns whether the value
    /// now names a rewrite target.
    fn rewrite_value(&mut self, role: Role, flag: &str, value: Value<'a>) -> bool {
        match self.rewritten(role, flag, value.text) {
            Rewritten::To(new_value) => {
                self.replace_value(flag, value, &new_value, value.text);
                true
            }
            Rewritten::Unchanged { on_target } => on_target,
        }
    }

    fn replace_value(&mut self, flag: &str, value: Value<'a>, new_value: &str, old_shown: &str) {
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
    fn rewritten(&mut self, role: Role, flag: &str, value: &str) -> Rewritten {
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

    /// An image argument, with or without the `docker://` transport; other
    /// transports name no registry and are left alone.
    fn rewrite_image_argument(&mut self, subcommand: &str, at: usize) -> bool {
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
    fn rewrite_csv(&mut self, flag: &str, value: Value<'a>) {
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
enum Rewritten {
    To(String),
    /// Left as it is; `on_target` when it already names a rewrite target.
    Unchanged {
        on_target: bool,
    },
}

/// pflag's false values.
fn is_false(text: &str) -> bool {
    matches!(text, "false" | "FALSE" | "False" | "f" | "F" | "0")
}

/// `--registry-map=<internal>=<https>` for every internal registry not
/// mapped yet, when the profile has such a flag: base images come from a
/// Dockerfile the webhook cannot see.
fn registry_maps(
    at: &ContainerAt<'_>,
    profile: &BuilderProfile,
    mapped: &[&str],
    list: List,
    rules: &Rules,
    patch: &mut PatchBuilder,
) -> Vec<String> {
    let Some(flag) = profile.flags.registry_map_flag.as_deref() else {
        return Vec::new();
    };
    let mut added = Vec::new();
    for rule in rules.rewrites.iter().filter(|r| r.from_prefix.is_empty()) {
        let already = mapped.iter().any(|key| {
            Domain::parse(key).map_or(key.eq_ignore_ascii_case(&rule.from_text), |d| {
                rule.is_source(&d)
            })
        });
        if already {
            continue;
        }
        let arg = format!("{flag}={}={}", rule.from_text, rule.rewrite_name(""));
        patch.explain(
            ChangeKind::RegistryMap,
            format!(
                "{}: added {arg} (base images from the internal registry are pulled over HTTPS)",
                field(at, profile, list)
            ),
        );
        added.push(arg);
    }
    added
}

#[derive(Default)]
struct Edits {
    command: ListEdits,
    args: ListEdits,
}

impl Edits {
    fn list(&mut self, list: List) -> &mut ListEdits {
        match list {
            List::Command => &mut self.command,
            List::Args => &mut self.args,
        }
    }

    fn remove(&mut self, arg: &Arg<'_>) {
        self.list(arg.list).removed.push(arg.index);
    }

    fn replace(&mut self, arg: &Arg<'_>, text: String) {
        self.list(arg.list).replaced.push((arg.index, text));
    }
}
