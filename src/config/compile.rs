//! The file checked and compiled into the engine's [`Rules`]: each error
//! names the key, as written in the file.

use super::errors::{ConfigError, Problem};
use super::{error, BuilderSpec, ConfigFile, LegacyKaniko, RewriteRuleSpec, Unknown, WrapperSpec};
use crate::engine::rules::{
    mentioned_hosts, BuilderProfile, CredentialSpec, FlagRoles, RewriteRule, Rules, Wrapper,
};
use crate::engine::WORKLOADS;
use crate::reference::{ImageRef, Location, Repository};

/// The keys `kaniko:` had: each as written there, and as a profile names it.
const LEGACY_KANIKO_KEYS: &[(&str, &str)] = &[
    ("images", "images"),
    ("executorCommands", "executables"),
    ("imageFlags", "imageFlags"),
    ("locationFlags", "locationFlags"),
    ("removeFlags", "removeFlags"),
    ("removeRegistryFlags", "removeRegistryFlags"),
];

/// Every rule of the file, checked.
pub(super) fn rules(file: &ConfigFile) -> Result<Rules, ConfigError> {
    let rewrites = file
        .rewrites
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(i, rule))
        .collect::<Result<Vec<_>, _>>()?;
    if rewrites.is_empty() {
        return Err(error("rewrites", Problem::NoRules));
    }
    check_rules_are_stable(&rewrites)?;
    for (i, name) in file.image_pull_secrets.iter().enumerate() {
        if !is_dns_subdomain(name) {
            return Err(error(
                format!("imagePullSecrets[{i}]"),
                Problem::SecretName(name.clone()),
            ));
        }
    }
    let (builders, wrappers) = compile_builders(file)?;
    let kinds = file
        .kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            WORKLOADS.iter().find(|w| w.kind == kind).ok_or_else(|| {
                let known: Vec<&str> = WORKLOADS.iter().map(|w| w.kind).collect();
                error(
                    format!("kinds[{i}]"),
                    Problem::UnknownKind {
                        kind: kind.clone(),
                        supported: known.join(", "),
                    },
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rules {
        mentioned_hosts: mentioned_hosts(&rewrites),
        rewrites,
        image_pull_secrets: file.image_pull_secrets.clone(),
        kinds,
        builders,
        wrappers,
    })
}

fn compile_rule(index: usize, rule: &RewriteRuleSpec) -> Result<RewriteRule, ConfigError> {
    fn parse<'v>(index: usize, side: &str, value: &'v str) -> Result<Location<'v>, ConfigError> {
        Location::parse(value).map_err(|e| {
            error(
                format!("rewrites[{index}].{side}"),
                Problem::Location {
                    value: value.to_owned(),
                    error: e,
                },
            )
        })
    }
    let from = parse(index, "from", &rule.from)?;
    let to = parse(index, "to", &rule.to)?;
    Ok(RewriteRule {
        from_host: from.domain.host.to_ascii_lowercase(),
        from_port: from.domain.port,
        from_prefix: from.path.unwrap_or("").to_owned(),
        from_text: rule.from.clone(),
        to_domain: to.domain.text.to_owned(),
        to_host: to.domain.host.to_ascii_lowercase(),
        to_port: to.domain.port,
        to_prefix: to.path.unwrap_or("").to_owned(),
    })
}

/// The builder profiles with `kaniko:` applied, and the wrappers.
fn compile_builders(file: &ConfigFile) -> Result<(Vec<BuilderProfile>, Vec<Wrapper>), ConfigError> {
    let mut profiles = file.builders.profiles.clone();
    if let Some(legacy) = &file.kaniko {
        let profile = profiles
            .iter_mut()
            .find(|p| p.name == "kaniko")
            .ok_or_else(|| error("kaniko", Problem::NoKanikoProfile))?;
        *profile = legacy.applied_to(profile)?;
        repositories(&profile.images, "kaniko.images")?;
        check_flag_roles(&profile.flags, "kaniko")?;
        not_empty(&profile.executables, "kaniko.executorCommands")?;
    }
    let profiles = compile_named(&profiles, "builders.profiles", compile_profile, |p| &p.name)?;
    let wrappers = compile_named(
        &file.builders.wrappers,
        "builders.wrappers",
        compile_wrapper,
        |w| &w.name,
    )?;
    Ok((profiles, wrappers))
}

/// Compiles each entry of a list whose names must be unique.
fn compile_named<S, T>(
    specs: &[S],
    field: &str,
    compile: impl Fn(&S, &str) -> Result<T, ConfigError>,
    name: impl Fn(&T) -> &String,
) -> Result<Vec<T>, ConfigError> {
    let mut compiled: Vec<T> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let item = compile(spec, &format!("{field}[{i}]"))?;
        if let Some(j) = compiled
            .iter()
            .position(|earlier| name(earlier) == name(&item))
        {
            return Err(error(
                format!("{field}[{i}].name"),
                Problem::DuplicateName(format!("{field}[{j}]")),
            ));
        }
        compiled.push(item);
    }
    Ok(compiled)
}

impl LegacyKaniko {
    /// `profile` with these keys set.
    fn applied_to(&self, profile: &BuilderSpec) -> Result<BuilderSpec, ConfigError> {
        let mut keys = match serde_yaml_ng::to_value(profile) {
            Ok(serde_yaml_ng::Value::Mapping(keys)) => keys,
            _ => unreachable!("a profile is a mapping"),
        };
        for (key, value) in &self.0 {
            let written = key.as_str().unwrap_or_default();
            let field = format!("kaniko.{written}");
            if written == "registryMap" {
                let Some(on) = value.as_bool() else {
                    return Err(error(field, Problem::Yaml("expected a boolean".into())));
                };
                let flag = match (on, &profile.flags.registry_map_flag) {
                    (false, _) => serde_yaml_ng::Value::Null,
                    (true, flag) => flag.as_deref().unwrap_or("--registry-map").into(),
                };
                if !on {
                    // Maps off: no variable is read as the map flag either.
                    let mut env_flags = profile.flags.env_flags.clone();
                    env_flags.retain(|_, f| Some(&*f) != profile.flags.registry_map_flag.as_ref());
                    let env_flags = serde_yaml_ng::to_value(env_flags)
                        .map_err(|e| error(field.clone(), Problem::Yaml(e.to_string())))?;
                    keys.insert("envFlags".into(), env_flags);
                }
                keys.insert("registryMapFlag".into(), flag);
                continue;
            }
            let Some((_, name)) = LEGACY_KANIKO_KEYS.iter().find(|(k, _)| *k == written) else {
                let known: Vec<&str> = LEGACY_KANIKO_KEYS.iter().map(|(k, _)| *k).collect();
                return Err(error(
                    "kaniko",
                    Problem::Yaml(format!(
                        "unknown field `{written}`, expected one of {}, registryMap",
                        known.join(", ")
                    )),
                ));
            };
            let list: Vec<String> = serde_yaml_ng::from_value(value.clone())
                .map_err(|e| error(field, Problem::Yaml(e.to_string())))?;
            keys.insert((*name).into(), list.into());
        }
        serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(keys))
            .map_err(|e| error("kaniko", Problem::Yaml(e.to_string())))
    }
}

/// Every flag a profile gives a role is a flag name.
fn check_flag_roles(flags: &FlagRoles, field: &str) -> Result<(), ConfigError> {
    let single = |flag: &Option<String>| flag.iter().cloned().collect::<Vec<_>>();
    let (tls, map) = (
        single(&flags.tls_verify_flag),
        single(&flags.registry_map_flag),
    );
    check_flags(&[
        (format!("{field}.valueFlags"), &flags.value_flags),
        (format!("{field}.imageFlags"), &flags.image_flags),
        (format!("{field}.locationFlags"), &flags.location_flags),
        (format!("{field}.csvFlags"), &flags.csv_flags),
        (format!("{field}.removeFlags"), &flags.remove_flags),
        (
            format!("{field}.removeRegistryFlags"),
            &flags.remove_registry_flags,
        ),
        (format!("{field}.tlsVerifyFlag"), &tls),
        (format!("{field}.registryMapFlag"), &map),
    ])?;
    // A variable stands for a flag whose value names a registry.
    for (name, flag) in &flags.env_flags {
        let key = format!("{field}.envFlags.{name}");
        if !is_variable_name(name, false) {
            return Err(error(key, Problem::VariableName(name.clone())));
        }
        let has_role = [&flags.image_flags, &flags.location_flags, &map]
            .iter()
            .any(|list| list.contains(flag));
        if !has_role {
            return Err(error(key, Problem::EnvFlagWithoutRole(flag.clone())));
        }
    }
    Ok(())
}

/// An environment variable's name; `glob` allows `*` as a wildcard.
fn is_variable_name(name: &str, glob: bool) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || (glob && b == b'*')
        })
}

/// A section's first key that it does not have.
fn check_no_unknown(unknown: &Unknown, field: &str) -> Result<(), ConfigError> {
    match unknown.keys().next() {
        Some(key) => Err(error(
            field,
            Problem::Yaml(format!("unknown field `{key}`")),
        )),
        None => Ok(()),
    }
}

fn compile_profile(spec: &BuilderSpec, field: &str) -> Result<BuilderProfile, ConfigError> {
    check_no_unknown(&spec.unknown, field)?;
    check_name(&spec.name, &format!("{field}.name"))?;
    let repositories = repositories(&spec.images, &format!("{field}.images"))?;
    not_empty(&spec.executables, &format!("{field}.executables"))?;
    if spec.images.is_empty() && spec.executables.is_empty() {
        return Err(error(field, Problem::Unrecognisable));
    }
    not_empty(&spec.subcommands, &format!("{field}.subcommands"))?;
    for (i, name) in spec.image_arguments.iter().enumerate() {
        if !spec.subcommands.contains(name) {
            return Err(error(
                format!("{field}.imageArguments[{i}]"),
                Problem::NotASubcommand(name.clone()),
            ));
        }
    }
    check_flag_roles(&spec.flags, field)?;
    if let Some(credentials) = &spec.credentials {
        check_credentials(credentials, &format!("{field}.credentials"))?;
    }
    Ok(BuilderProfile {
        name: spec.name.clone(),
        repositories,
        executables: spec.executables.clone(),
        subcommands: spec.subcommands.clone(),
        image_arguments: spec.image_arguments.clone(),
        flags: spec.flags.clone(),
        credentials: spec.credentials.clone(),
    })
}

/// Absolute paths, variable names, and flag names.
fn check_credentials(spec: &CredentialSpec, field: &str) -> Result<(), ConfigError> {
    let absolute = |path: &str| path.starts_with('/') && !path.contains("//") && path.len() > 1;
    if !absolute(&spec.mount_path) || spec.mount_path.contains('*') {
        return Err(error(
            format!("{field}.mountPath"),
            Problem::NotAnAbsolutePath(spec.mount_path.clone()),
        ));
    }
    for (i, path) in spec.own_paths.iter().enumerate() {
        if !absolute(path) {
            return Err(error(
                format!("{field}.ownPaths[{i}]"),
                Problem::NotAnAbsolutePath(path.clone()),
            ));
        }
    }
    let variables = spec.env.iter().map(|e| ("env.name", &e.name));
    let lists = [("ownEnv", &spec.own_env), ("unsafeEnv", &spec.unsafe_env)];
    let listed = lists.iter().flat_map(|(key, names)| {
        names
            .iter()
            .enumerate()
            .map(move |(i, n)| (format!("{key}[{i}]"), n))
    });
    for (key, name) in variables.map(|(k, n)| (k.to_owned(), n)).chain(listed) {
        if !is_variable_name(name, true) {
            return Err(error(
                format!("{field}.{key}"),
                Problem::VariableName(name.clone()),
            ));
        }
    }
    check_flags(&[
        (format!("{field}.ownFlags"), &spec.own_flags),
        (format!("{field}.unsafeFlags"), &spec.unsafe_flags),
    ])
}

fn compile_wrapper(spec: &WrapperSpec, field: &str) -> Result<Wrapper, ConfigError> {
    check_name(&spec.name, &format!("{field}.name"))?;
    not_empty(&spec.executables, &format!("{field}.executables"))?;
    if spec.executables.is_empty() {
        return Err(error(format!("{field}.executables"), Problem::Empty));
    }
    let flag: Vec<String> = spec.executable_flag.iter().cloned().collect();
    check_flags(&[(format!("{field}.executableFlag"), &flag)])?;
    if spec.subcommand.as_deref() == Some("") {
        return Err(error(format!("{field}.subcommand"), Problem::Empty));
    }
    Ok(Wrapper {
        name: spec.name.clone(),
        executables: spec.executables.clone(),
        subcommand: spec.subcommand.clone(),
        executable_flag: spec.executable_flag.clone(),
    })
}

fn check_name(name: &str, field: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(error(field, Problem::ProfileName(name.to_owned())));
    }
    Ok(())
}

/// Repositories without a tag or digest, as Docker resolves them.
fn repositories(images: &[String], field: &str) -> Result<Vec<Repository>, ConfigError> {
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let field = || format!("{field}[{i}]");
            let parsed =
                ImageRef::parse(image).map_err(|e| error(field(), Problem::Reference(e)))?;
            if parsed.tag.is_some() || parsed.digest.is_some() {
                return Err(error(field(), Problem::TaggedRepository(image.clone())));
            }
            Ok(Repository::of(&parsed))
        })
        .collect()
}

fn check_flags<F: AsRef<str>>(lists: &[(F, &Vec<String>)]) -> Result<(), ConfigError> {
    for (field, flags) in lists {
        for (i, flag) in flags.iter().enumerate() {
            let valid = flag.starts_with('-')
                && flag.len() > 1
                && !flag.contains(['=', ' '])
                && flag != "--";
            if !valid {
                return Err(error(
                    format!("{}[{i}]", field.as_ref()),
                    Problem::FlagName(flag.clone()),
                ));
            }
        }
    }
    Ok(())
}

fn not_empty(values: &[String], field: &str) -> Result<(), ConfigError> {
    match values.iter().position(String::is_empty) {
        Some(i) => Err(error(format!("{field}[{i}]"), Problem::Empty)),
        None => Ok(()),
    }
}

/// A rule whose output another rule would rewrite again breaks idempotency
/// (and may loop on reinvocation), so it is refused.
fn check_rules_are_stable(rules: &[RewriteRule]) -> Result<(), ConfigError> {
    for (i, rule) in rules.iter().enumerate() {
        let same_registry = |other: &RewriteRule| {
            other.from_port == rule.to_port && other.from_host == rule.to_host
        };
        if let Some((j, other)) = rules.iter().enumerate().find(|(_, o)| same_registry(o)) {
            return Err(error(
                format!("rewrites[{i}].to"),
                Problem::TargetRewritten {
                    target: rule.to_domain.clone(),
                    index: j,
                    from: other.from_text.clone(),
                },
            ));
        }
        for (j, earlier) in rules[..i].iter().enumerate() {
            if earlier.from_host == rule.from_host
                && earlier.from_port == rule.from_port
                && earlier.from_prefix == rule.from_prefix
            {
                return Err(error(
                    format!("rewrites[{i}].from"),
                    Problem::DuplicateSource {
                        index: j,
                        from: earlier.from_text.clone(),
                    },
                ));
            }
        }
    }
    Ok(())
}

/// RFC 1123 subdomain, as Kubernetes object names are.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}
