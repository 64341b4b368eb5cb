//! What a container still names on a rewrite source once the rules have
//! run: a value of `command`, `args` or `env` that no rule moved (a program
//! that is not a known builder, a shell script, a build argument). It is
//! never rewritten as text, since only the program knows what it means; it
//! gets one line, so that a reference left on the internal registry is
//! never silent.

use super::builders::EnvVar;
use super::explain::shown;
use super::patch::PatchBuilder;
use super::rules::{BuilderProfile, Rules};
use super::view::{ContainerView, JsonStr};
use super::ContainerAt;

/// A value left naming a rewrite source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// `containers[app].args[3]`.
    pub field: String,
    /// The value, as shown in lines.
    pub value: String,
    /// The source registry it names, as the rule writes it.
    pub registry: String,
    pub reason: LeftoverReason,
}

/// Why a value was left: also the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeftoverReason {
    /// The program is not a builder the rules know.
    NotABuilder,
    /// The program is a shell: the reference is inside a script.
    ShellScript,
    /// A build argument (`--build-arg`), which only the Dockerfile reads.
    BuildArgument,
    /// A known builder's argument its profile gives no registry role.
    BuilderArgument,
    /// An env value that is not a builder's setting.
    EnvValue,
}

impl LeftoverReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeftoverReason::NotABuilder => "not_a_builder",
            LeftoverReason::ShellScript => "shell_script",
            LeftoverReason::BuildArgument => "build_argument",
            LeftoverReason::BuilderArgument => "builder_argument",
            LeftoverReason::EnvValue => "env_value",
        }
    }

    fn why(self) -> &'static str {
        match self {
            LeftoverReason::NotABuilder => "not a known builder's flag",
            LeftoverReason::ShellScript => "a shell script",
            LeftoverReason::BuildArgument => "a build argument",
            LeftoverReason::BuilderArgument => "not a flag the builder's profile rewrites",
            LeftoverReason::EnvValue => "an env value",
        }
    }
}

impl Leftover {
    /// `containers[x].args[3]: names docker-registry.registry.svc:5000,
    /// left as it is (not a known builder's flag)`
    pub fn message(&self) -> String {
        format!(
            "{}: names {}, left as it is ({})",
            self.field,
            self.registry,
            self.reason.why()
        )
    }
}

/// Programs whose arguments are a script.
const SHELLS: [&str; 7] = ["sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"];

/// Notes every value of the container that still names a rewrite source
/// once `patch` is applied. `builder` is the builder the container runs.
pub(crate) fn note(
    at: &ContainerAt<'_>,
    container: &ContainerView<'_>,
    env: &[EnvVar<'_>],
    builder: Option<&BuilderProfile>,
    rules: &Rules,
    patch: &mut PatchBuilder,
) {
    let shell = container
        .command
        .as_deref()
        .and_then(<[_]>::first)
        .map(|program| program.0.rsplit('/').next().unwrap_or_default())
        .is_some_and(|program| SHELLS.contains(&program));
    let lists = [("command", &container.command), ("args", &container.args)];
    let mut found = Vec::new();
    for (field, values) in lists {
        let Some(values) = values else { continue };
        for (index, value) in values.iter().enumerate() {
            let previous = index.checked_sub(1).and_then(|i| values.get(i));
            if builder.is_some_and(|b| is_registry_map(b, &value.0, previous.map(|p| &*p.0))) {
                continue;
            }
            let Some(registry) = left_naming(at, field, index, &value.0, rules, patch) else {
                continue;
            };
            let reason = if shell {
                LeftoverReason::ShellScript
            } else if builder.is_none() {
                LeftoverReason::NotABuilder
            } else if is_build_argument(&value.0, previous.map(|p| &*p.0)) {
                LeftoverReason::BuildArgument
            } else {
                LeftoverReason::BuilderArgument
            };
            found.push(leftover(at, field, index, value, registry, reason));
        }
    }
    for (index, var) in env.iter().enumerate() {
        let Some(value) = &var.value else { continue };
        let is_map_setting = |b: &BuilderProfile| {
            let flag = var.name.as_ref().and_then(|n| b.flags.env_flags.get(&*n.0));
            flag.is_some() && flag == b.flags.registry_map_flag.as_ref()
        };
        if builder.is_some_and(is_map_setting) {
            continue;
        }
        if let Some(registry) = left_naming(at, "env", index, &value.0, rules, patch) {
            let reason = LeftoverReason::EnvValue;
            found.push(leftover(at, "env", index, value, registry, reason));
        }
    }
    for leftover in found {
        patch.leave(leftover);
    }
}

/// The source `value` still names once the patch is applied, if any.
fn left_naming(
    at: &ContainerAt<'_>,
    field: &str,
    index: usize,
    value: &str,
    rules: &Rules,
    patch: &PatchBuilder,
) -> Option<String> {
    let value = match patch.edited(at, field).find(|e| e.index == index) {
        Some(edited) => edited.new.as_deref()?,
        None => value,
    };
    rules.named_source(value).map(|rule| match rule.from_port {
        Some(port) => format!("{}:{port}", rule.from_host),
        None => rule.from_host.clone(),
    })
}

/// A registry map names the internal registry as its key on purpose: the
/// rules keep its mirror on the HTTPS registry.
fn is_registry_map(builder: &BuilderProfile, text: &str, previous: Option<&str>) -> bool {
    let Some(flag) = builder.flags.registry_map_flag.as_deref() else {
        return false;
    };
    text.strip_prefix(flag)
        .is_some_and(|rest| rest.starts_with('='))
        || previous == Some(flag)
}

/// `--build-arg=K=V`, `--build-arg K=V`, or BuildKit's `--opt build-arg:K=V`.
fn is_build_argument(text: &str, previous: Option<&str>) -> bool {
    let name = text.trim_start_matches('-');
    name.starts_with("build-arg")
        || name.starts_with("opt=build-arg:")
        || previous.is_some_and(|p| p.trim_start_matches('-') == "build-arg")
}

fn leftover(
    at: &ContainerAt<'_>,
    field: &str,
    index: usize,
    value: &JsonStr<'_>,
    registry: String,
    reason: LeftoverReason,
) -> Leftover {
    Leftover {
        field: format!("{}.{field}[{index}]", at.label()),
        value: shown(&value.0).into_owned(),
        registry,
        reason,
    }
}
