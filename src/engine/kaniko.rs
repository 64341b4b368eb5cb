//! Kaniko build containers: registry-valued flags are rewritten, flags that
//! weaken TLS are removed, and `--registry-map` sends base-image pulls from
//! the internal registry to its HTTPS host. Every other argument keeps its
//! value and its place.

use super::explain::{shown, ChangeKind};
use super::patch::{ListEdits, PatchBuilder};
use super::rewrite_reference;
use super::rules::{KanikoRules, Rules};
use super::view::{ContainerView, JsonStr};
use super::ContainerAt;
use crate::reference::{Domain, ImageRef, Location};

const REGISTRY_MAP_FLAG: &str = "--registry-map";

/// Kaniko flags that take a value. Knowing them means the value of
/// `--build-arg --insecure` is never mistaken for a flag.
const VALUE_FLAGS: &[&str] = &[
    "--build-arg",
    "--cache-copy-layers",
    "--cache-dir",
    "--cache-ttl",
    "--compression",
    "--compression-level",
    "--context",
    "-c",
    "--context-sub-path",
    "--custom-platform",
    "--customPlatform",
    "--digest-file",
    "--dockerfile",
    "-f",
    "--git",
    "--ignore-path",
    "--image-download-retry",
    "--image-fs-extract-retry",
    "--image-name-tag-with-digest-file",
    "--image-name-with-digest-file",
    "--kaniko-dir",
    "--label",
    "--log-format",
    "--oci-layout-path",
    "--push-retry",
    "--registry-certificate",
    "--registry-client-cert",
    "--snapshot-mode",
    "--snapshotMode",
    "--tar-path",
    "--target",
    "--verbosity",
    "-v",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Command,
    Args,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Command => "command",
            List::Args => "args",
        }
    }
}

/// One argument of the executor, wherever it sits.
struct Arg<'a> {
    list: List,
    index: usize,
    text: &'a str,
}

/// What a flag does to us.
#[derive(Clone, Copy)]
enum Role {
    Image,
    Location,
    Remove,
    RemoveRegistry,
    RegistryMap,
    OtherWithValue,
}

/// A recognised flag: its role, its spelling up to the value, and the
/// value when it is in the same argument (`--flag=value`, `-d=value`, `-dvalue`).
struct Flag<'a> {
    role: Role,
    name: &'a str,
    inline: Option<(&'a str, &'a str)>,
}

fn classify<'a>(arg: &'a str, spec: &KanikoRules) -> Option<Flag<'a>> {
    if !arg.starts_with('-') || arg == "--" {
        return None;
    }
    let (name, inline) = match arg.find('=') {
        Some(i) => (&arg[..i], Some((&arg[..=i], &arg[i + 1..]))),
        None => (arg, None),
    };
    let is = |list: &[String]| list.iter().any(|f| f == name);
    let role = if is(&spec.image_flags) {
        Role::Image
    } else if is(&spec.location_flags) {
        Role::Location
    } else if is(&spec.remove_flags) {
        Role::Remove
    } else if is(&spec.remove_registry_flags) {
        Role::RemoveRegistry
    } else if name == REGISTRY_MAP_FLAG {
        Role::RegistryMap
    } else if VALUE_FLAGS.contains(&name) {
        Role::OtherWithValue
    } else {
        // pflag also takes a shorthand's value glued on: `-dfoo`.
        return glued_shorthand(arg, spec);
    };
    Some(Flag { role, name, inline })
}

fn glued_shorthand<'a>(arg: &'a str, spec: &KanikoRules) -> Option<Flag<'a>> {
    let bytes = arg.as_bytes();
    if bytes.len() <= 2 || bytes[1] == b'-' || !arg.is_char_boundary(2) {
        return None;
    }
    let (name, value) = arg.split_at(2);
    if spec.image_flags.iter().any(|f| f == name) {
        return Some(Flag {
            role: Role::Image,
            name,
            inline: Some((name, value)),
        });
    }
    None
}

pub(crate) fn rewrite(
    at: &ContainerAt<'_>,
    container: &ContainerView<'_>,
    image: Option<&ImageRef<'_>>,
    rules: &Rules,
    builder: &mut PatchBuilder,
) {
    let spec = &rules.kaniko;
    let command = container.command.as_deref();
    let command_is_executor = command
        .and_then(<[JsonStr]>::first)
        .is_some_and(|c| spec.executor_commands.iter().any(|e| e == &**c));
    let image_is_kaniko = image.is_some_and(|i| rules.is_kaniko_image(i));
    if !command_is_executor && !image_is_kaniko {
        return;
    }
    if let (Some(first), false) = (command.and_then(<[JsonStr]>::first), command_is_executor) {
        // A shell wrapper (`sh -c "..."`) hides the flags in a script.
        builder.warn(format!(
            "{}: Kaniko image runs {:?}, not the executor; its arguments were left unchanged",
            at.label(),
            shown(first)
        ));
        return;
    }

    let mut args: Vec<Arg> = Vec::new();
    if let Some(command) = command {
        args.extend(command.iter().enumerate().skip(1).map(|(index, text)| Arg {
            list: List::Command,
            index,
            text,
        }));
    }
    if let Some(list) = container.args.as_deref() {
        args.extend(list.iter().enumerate().map(|(index, text)| Arg {
            list: List::Args,
            index,
            text,
        }));
    }

    let mut edits = Edits::default();
    let mut pushes_to_target = false;
    let mut mapped_registries: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.text == "--" {
            break;
        }
        let Some(flag) = classify(arg.text, spec) else {
            i += 1;
            continue;
        };
        // The value is either glued on, or the next argument.
        let (value, value_arg) = match flag.inline {
            Some((_, value)) => (Some(value), i),
            None if matches!(flag.role, Role::Remove) => (None, i),
            None => (args.get(i + 1).map(|a| a.text), i + 1),
        };
        let consumed = if flag.inline.is_none() && value.is_some() {
            2
        } else {
            1
        };
        match (flag.role, value) {
            (Role::Remove, _) => {
                edits.remove(arg);
                builder.explain(
                    ChangeKind::KanikoFlagRemoved,
                    format!(
                        "{}.{}: removed {} (the HTTPS registry needs no TLS exception)",
                        at.label(),
                        arg.list.field(),
                        shown(arg.text)
                    ),
                );
            }
            (Role::Image | Role::Location, Some(value)) => {
                match rewrite_flag_value(flag.role, value, rules, at, flag.name, builder) {
                    FlagValue::Rewritten(new_value) => {
                        pushes_to_target = true;
                        let target = &args[value_arg];
                        let new_text = match flag.inline {
                            Some((prefix, _)) => format!("{prefix}{new_value}"),
                            None => new_value.clone(),
                        };
                        builder.explain(
                            ChangeKind::KanikoArg,
                            format!(
                                "{}.{}: {} {} -> {}",
                                at.label(),
                                target.list.field(),
                                flag.name,
                                shown(value),
                                shown(&new_value)
                            ),
                        );
                        edits.replace(target, new_text);
                    }
                    FlagValue::Unchanged { on_target } => pushes_to_target |= on_target,
                }
            }
            (Role::RemoveRegistry, Some(value)) => {
                let names_rewritten = Domain::parse(value.split('/').next().unwrap_or(value))
                    .is_ok_and(|d| rules.is_rewrite_source(&d));
                if names_rewritten {
                    edits.remove(arg);
                    if flag.inline.is_none() {
                        edits.remove(&args[value_arg]);
                    }
                    builder.explain(
                        ChangeKind::KanikoFlagRemoved,
                        format!(
                            "{}.{}: removed {} {} (the registry is now reached over HTTPS)",
                            at.label(),
                            arg.list.field(),
                            flag.name,
                            shown(value)
                        ),
                    );
                }
            }
            (Role::RegistryMap, Some(value)) => {
                mapped_registries.extend(
                    value
                        .split(';')
                        .filter_map(|m| m.split_once('='))
                        .map(|(k, _)| k),
                );
            }
            _ => {}
        }
        i += consumed;
    }

    let wants_registry_map = spec.registry_map && (pushes_to_target || !edits.is_empty());
    let mut map_args = Vec::new();
    if wants_registry_map {
        for rule in rules.rewrites.iter().filter(|r| r.from_prefix.is_empty()) {
            let already = mapped_registries.iter().any(|key| {
                Domain::parse(key).map_or(key.eq_ignore_ascii_case(&rule.from_text), |d| {
                    rule.is_source(&d)
                })
            });
            if !already {
                let arg = format!(
                    "{REGISTRY_MAP_FLAG}={}={}",
                    rule.from_text,
                    rule.rewrite_name("")
                );
                builder.explain(
                    ChangeKind::RegistryMap,
                    format!(
                        "{}.{}: added {arg} (base images from the internal registry are pulled over HTTPS)",
                        at.label(),
                        if command_is_executor { "command" } else { "args" }
                    ),
                );
                map_args.push(arg);
            }
        }
    }
    // New flags go first, right after the executable: appended at the end
    // they could become the value of a trailing flag that takes one
    // (`--oci-layout-path` with its value missing, say), or land after `--`.
    if command_is_executor {
        edits.command.appended = map_args;
        edits.command.insert_before = Some(1);
    } else {
        edits.args.appended = map_args;
        edits.args.insert_before = container.args.is_some().then_some(0);
    }
    if !edits.command.is_empty() {
        builder.edit_list(at, "command", true, std::mem::take(&mut edits.command));
    }
    if !edits.args.is_empty() {
        builder.edit_list(at, "args", container.args.is_some(), edits.args);
    }
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

    fn is_empty(&self) -> bool {
        self.command.is_empty() && self.args.is_empty()
    }
}

/// What a registry-valued flag's value becomes.
enum FlagValue {
    Rewritten(String),
    /// Left as it is; `on_target` when it already names a rewrite target.
    Unchanged {
        on_target: bool,
    },
}

/// Parses the value once, as an image reference or a registry location by
/// the flag's role, and rewrites it if a rule matches. A value that does not
/// parse is left alone, with a warning.
fn rewrite_flag_value(
    role: Role,
    value: &str,
    rules: &Rules,
    at: &ContainerAt<'_>,
    flag: &str,
    builder: &mut PatchBuilder,
) -> FlagValue {
    let (parsed, expected) = match role {
        Role::Image => (
            ImageRef::parse(value).map(|r| (r.domain, rewrite_reference(&r, rules))),
            "a valid image reference",
        ),
        _ => (
            Location::parse(value).map(|l| {
                let rewritten = rules
                    .find_rule(&l.domain, l.path.unwrap_or(""))
                    .map(|(rule, rest)| rule.rewrite_name(rest));
                (Some(l.domain), rewritten)
            }),
            "a registry location",
        ),
    };
    match parsed {
        Ok((_, Some(new_value))) => FlagValue::Rewritten(new_value),
        Ok((domain, None)) => FlagValue::Unchanged {
            on_target: domain.is_some_and(|d| rules.is_rewrite_target(&d)),
        },
        Err(e) => {
            builder.warn(format!(
                "{}: {flag} left unchanged, {:?} is not {expected}: {e}",
                at.label(),
                shown(value)
            ));
            FlagValue::Unchanged { on_target: false }
        }
    }
}
