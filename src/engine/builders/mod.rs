//! Image builds run in containers: which builder a container runs, directly
//! or as the program of a CI engine's step wrapper (Tekton, Argo
//! Workflows), and its arguments rewritten by that builder's profile.
//!
//! Every profile shares one argument walker (`walker`). A flag's role comes
//! from the profile: an image reference, a registry location, BuildKit CSV
//! (`csv`), a TLS-weakening flag to remove, a registry map to add. Every
//! other argument keeps its value and its place. Variables the builder reads
//! as flags are rewritten alike (`env`). A build whose text names no rule
//! registry is not ours, and is left as it is.

mod csv;
mod env;
mod run;
mod values;
mod walker;

use super::explain::{shown, ChangeKind};
use super::patch::PatchBuilder;
use super::rules::{BuilderProfile, Rules, Wrapper, IMAGE_TRANSPORTS as TRANSPORTS};
use super::view::{ContainerView, JsonStr};
use super::ContainerAt;
use crate::reference::{Domain, ImageRef};
pub(crate) use env::{vars as env_vars, EnvVar};
use run::{Edits, Run};
use walker::{Arg, List};

/// A builder found in a container: its profile, its arguments, and where
/// flags it did not have go (right after the program, before its own
/// arguments).
struct Invocation<'a, 'r> {
    profile: &'r BuilderProfile,
    args: Vec<Arg<'a>>,
    insert_at: InsertAt,
    /// The container's `env`, read once.
    env: Vec<EnvVar<'a>>,
}

/// Where new flags go: a list, and the index to insert at (`None`: a list
/// that does not exist yet).
type InsertAt = (List, Option<usize>);

/// A program as a container runs it: directly, or under a wrapper.
struct Program<'a> {
    /// `None`: the image's own entrypoint, which a wrapper runs when the
    /// step names no program (Tekton resolves a step without `command` from
    /// its image and gives no `-entrypoint`).
    executable: Option<&'a str>,
    args: Vec<Arg<'a>>,
    insert_at: InsertAt,
}

/// A build found in a container, as it is after its rewrite: what the
/// credential step needs to know of it.
pub(crate) struct Build<'a, 'r> {
    pub profile: &'r BuilderProfile,
    /// It pushes to, caches in or pulls from a rewrite target.
    pub reaches_target: bool,
    /// The flags its arguments hold.
    pub flags: Vec<&'a str>,
}

pub(crate) fn rewrite<'a, 'r>(
    at: &ContainerAt<'_>,
    container: &'a ContainerView<'a>,
    image: Option<&ImageRef<'_>>,
    rules: &'r Rules,
    patch: &mut PatchBuilder,
) -> Option<Build<'a, 'r>> {
    let invocation = find(at, container, image, rules, patch)?;
    let mut run = Run {
        at,
        profile: invocation.profile,
        args: &invocation.args,
        rules,
        patch,
        edits: Edits::default(),
        changed: false,
        pushes_to_target: false,
        reaches_target: false,
        flags_seen: Vec::new(),
        mapped: Vec::new(),
        fields: [None, None],
    };
    run.rewrite(&invocation.env);
    let (list, index) = invocation.insert_at;
    let mut edits = run.edits;
    let mut maps_added = false;
    if run.changed || run.pushes_to_target {
        let maps = registry_maps(at, run.profile, &run.mapped, list, rules, run.patch);
        maps_added = !maps.is_empty();
        let list_edits = edits.list(list);
        list_edits.appended = maps;
        list_edits.insert_before = index;
    }
    let build = Build {
        profile: run.profile,
        reaches_target: run.pushes_to_target || run.reaches_target || maps_added,
        flags: std::mem::take(&mut run.flags_seen),
    };
    if !edits.command.is_empty() {
        patch.edit_list(at, "command", true, std::mem::take(&mut edits.command));
    }
    if !edits.args.is_empty() {
        patch.edit_list(at, "args", container.args.is_some(), edits.args);
    }
    Some(build)
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
    // A build that names no rule registry is not ours to change, not even
    // its TLS flags; the admission pre-filter relies on it.
    let env = env::vars(container.env);
    if !names_a_registry(container, &env, rules) {
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
            env,
        });
    };
    let (program, profile) = match wrapper {
        Some(wrapper) => {
            let program = unwrap(wrapper, &all[1..])?;
            let profile = match program.executable {
                Some(executable) => rules.builder_for_executable(executable),
                None => image_builder,
            };
            (program, profile)
        }
        None => {
            let program = Program {
                executable: Some(first),
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
            env,
        }),
        None => {
            if let Some(profile) = image_builder {
                patch.warn(format!(
                    "{}: {} image runs {:?}, not the builder; its arguments were left unchanged",
                    at.label(),
                    display_name(&profile.name),
                    shown(program.executable.unwrap_or_default())
                ));
            }
            None
        }
    }
}

/// The container's image, command, args or an env value names a rule's
/// registry (`Rules::mentions_a_registry`).
fn names_a_registry(container: &ContainerView<'_>, env: &[EnvVar<'_>], rules: &Rules) -> bool {
    let lists = [&container.command, &container.args];
    container
        .image
        .iter()
        .chain(lists.into_iter().flatten().flatten())
        .chain(env.iter().filter_map(|var| var.value.as_ref()))
        .any(|text| rules.mentions_a_registry(&text.0))
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
            });
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
                executable: Some(program.text),
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
