//! Configuration: the file format, its built-in defaults (the registry
//! decision's values) and strict validation into the engine's [`Rules`].
//!
//! A key left out of the file keeps its default; a key given replaces the
//! default whole (lists are not merged).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod builders;

use builders::strings;
pub use builders::{BuilderSpec, WrapperSpec};

use crate::engine::rules::{BuilderProfile, RewriteRule, Rules, Wrapper};
use crate::engine::WORKLOADS;
use crate::reference::{ImageRef, Location, ReferenceError, Repository};

/// The configuration file, as written by users and printed by `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Registry rewrites, first match wins.
    pub rewrites: Vec<RewriteRuleSpec>,
    /// Secrets appended to `imagePullSecrets` when an image is on a rewrite target.
    pub image_pull_secrets: Vec<String>,
    /// Image builders and the CI wrappers they run in.
    pub builders: BuildersSpec,
    /// The Kaniko profile's fields under their first names; kept so that
    /// files written before `builders` load as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kaniko: Option<KanikoSpec>,
    /// Kinds whose pod templates are rewritten.
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteRuleSpec {
    /// `host[:port][/path]` of the internal registry.
    pub from: String,
    /// `host[:port][/path]` it is reached at over HTTPS.
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BuildersSpec {
    /// Tried in order; the first that recognises a container applies.
    pub profiles: Vec<BuilderSpec>,
    pub wrappers: Vec<WrapperSpec>,
}

/// `kaniko:` as it was before `builders`: each key sets the same field of
/// the profile named `kaniko` (`executorCommands` is its `executables`, and
/// `registryMap: false` takes its `registryMapFlag` away).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KanikoSpec {
    pub images: Vec<String>,
    pub executor_commands: Vec<String>,
    pub image_flags: Vec<String>,
    pub location_flags: Vec<String>,
    pub remove_flags: Vec<String>,
    pub remove_registry_flags: Vec<String>,
    pub registry_map: bool,
}

/// The decision record's values.
impl Default for ConfigFile {
    fn default() -> Self {
        let rewrites = [
            "docker-registry.registry.svc.cluster.local:5000",
            "docker-registry.registry.svc:5000",
            "docker-registry.registry:5000",
        ]
        .into_iter()
        .map(|from| RewriteRuleSpec {
            from: from.to_owned(),
            to: "registry.k8s-lab.dev".to_owned(),
        })
        .collect();
        ConfigFile {
            rewrites,
            image_pull_secrets: strings(&["registry-credentials"]),
            builders: BuildersSpec::default(),
            kaniko: None,
            kinds: strings(&["Pod", "Job"]),
        }
    }
}

impl Default for BuildersSpec {
    fn default() -> Self {
        BuildersSpec {
            profiles: builders::profiles(),
            wrappers: builders::wrappers(),
        }
    }
}

impl Default for KanikoSpec {
    fn default() -> Self {
        let profile = builders::kaniko();
        KanikoSpec {
            images: profile.images,
            executor_commands: profile.executables,
            image_flags: profile.image_flags,
            location_flags: profile.location_flags,
            remove_flags: profile.remove_flags,
            remove_registry_flags: profile.remove_registry_flags,
            registry_map: profile.registry_map_flag.is_some(),
        }
    }
}

/// A configuration that cannot be used, naming the offending key (none for
/// text that is not YAML at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", field_prefix(.field))]
pub struct ConfigError {
    pub field: String,
    pub problem: Problem,
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// What is wrong with a key's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// serde's own words, with the key's path split off into the field.
    #[error("{0}")]
    Yaml(String),
    #[error("at least one rule is required")]
    NoRules,
    #[error("{value:?}: {error}")]
    Location {
        value: String,
        error: ReferenceError,
    },
    #[error("{0}")]
    Reference(ReferenceError),
    #[error("{0:?} has a tag or digest; give the repository alone, every tag matches")]
    TaggedRepository(String),
    #[error("{0:?} is not a valid Secret name (lower-case DNS subdomain)")]
    SecretName(String),
    #[error("{0:?} is not a flag name like --destination or -d")]
    FlagName(String),
    #[error("must not be empty")]
    Empty,
    #[error("unknown kind {kind:?}; supported: {supported}")]
    UnknownKind { kind: String, supported: String },
    #[error("{target} is itself rewritten by rewrites[{index}] ({from}); a rule's target must not be a rewritten registry")]
    TargetRewritten {
        target: String,
        index: usize,
        from: String,
    },
    #[error("duplicates rewrites[{index}].from ({from})")]
    DuplicateSource { index: usize, from: String },
    #[error("{0:?} is not a lower-case name like buildkit")]
    ProfileName(String),
    #[error("duplicates the name of {0}")]
    DuplicateName(String),
    #[error("neither images nor executables: the builder would never be recognised")]
    Unrecognisable,
    #[error("{0:?} is not one of the subcommands")]
    NotASubcommand(String),
    #[error("no builder profile named kaniko to apply it to")]
    NoKanikoProfile,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("config file {}", .path.display())]
pub struct ConfigLoadError {
    pub path: PathBuf,
    #[source]
    pub source: ConfigFileError,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// The validated configuration: the file as given, and the [`Rules`] the
/// engine applies (which it dereferences to).
#[derive(Debug, Clone)]
pub struct Config {
    file: ConfigFile,
    rules: Rules,
}

impl std::ops::Deref for Config {
    type Target = Rules;

    fn deref(&self) -> &Rules {
        &self.rules
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(ConfigFile::default()).expect("the built-in defaults are valid")
    }
}

impl Config {
    /// Validates a configuration file.
    pub fn new(file: ConfigFile) -> Result<Self, ConfigError> {
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
        let (builders, wrappers) = compile_builders(&file)?;
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
        let rules = Rules {
            rewrites,
            image_pull_secrets: file.image_pull_secrets.clone(),
            kinds,
            builders,
            wrappers,
        };
        Ok(Config { file, rules })
    }

    /// Parses and validates YAML (or JSON) text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        // An empty file is an empty mapping: every default applies.
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(yaml_error)?
        };
        Config::new(file)
    }

    /// Reads, parses and validates a file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigLoadError> {
        let loaded = std::fs::read_to_string(path)
            .map_err(ConfigFileError::from)
            .and_then(|text| Config::from_yaml(&text).map_err(ConfigFileError::from));
        loaded.map_err(|source| ConfigLoadError {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn file(&self) -> &ConfigFile {
        &self.file
    }
}

fn error(field: impl Into<String>, problem: Problem) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem,
    }
}

/// serde_yaml_ng puts the path of the failing key in front of its message
/// (`rewrites[0]: unknown field ...`); split it off into the field. A
/// syntax error has no key, and an empty field.
fn yaml_error(e: serde_yaml_ng::Error) -> ConfigError {
    let message = e.to_string();
    match message.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => error(path, Problem::Yaml(reason.into())),
        _ => error("", Problem::Yaml(message)),
    }
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
    if let Some(kaniko) = &file.kaniko {
        check_kaniko(kaniko)?;
        let profile = profiles
            .iter_mut()
            .find(|p| p.name == "kaniko")
            .ok_or_else(|| error("kaniko", Problem::NoKanikoProfile))?;
        profile.images = kaniko.images.clone();
        profile.executables = kaniko.executor_commands.clone();
        profile.image_flags = kaniko.image_flags.clone();
        profile.location_flags = kaniko.location_flags.clone();
        profile.remove_flags = kaniko.remove_flags.clone();
        profile.remove_registry_flags = kaniko.remove_registry_flags.clone();
        profile.registry_map_flag = match kaniko.registry_map {
            true => profile
                .registry_map_flag
                .clone()
                .or(Some("--registry-map".into())),
            false => None,
        };
    }
    let compiled = profiles
        .iter()
        .enumerate()
        .map(|(i, spec)| compile_profile(spec, &format!("builders.profiles[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(
        compiled.iter().map(|p| p.name.as_str()),
        "builders.profiles",
    )?;
    let wrappers = file
        .builders
        .wrappers
        .iter()
        .enumerate()
        .map(|(i, spec)| compile_wrapper(spec, &format!("builders.wrappers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(
        wrappers.iter().map(|w| w.name.as_str()),
        "builders.wrappers",
    )?;
    Ok((compiled, wrappers))
}

/// The `kaniko:` keys, named as they are written there.
fn check_kaniko(spec: &KanikoSpec) -> Result<(), ConfigError> {
    repositories(&spec.images, "kaniko.images")?;
    check_flags(&[
        ("kaniko.imageFlags", &spec.image_flags),
        ("kaniko.locationFlags", &spec.location_flags),
        ("kaniko.removeFlags", &spec.remove_flags),
        ("kaniko.removeRegistryFlags", &spec.remove_registry_flags),
    ])?;
    not_empty(&spec.executor_commands, "kaniko.executorCommands")
}

fn compile_profile(spec: &BuilderSpec, field: &str) -> Result<BuilderProfile, ConfigError> {
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
    let single = |name: &str, flag: &Option<String>| {
        (
            format!("{field}.{name}"),
            flag.iter().cloned().collect::<Vec<_>>(),
        )
    };
    let (tls_field, tls) = single("tlsVerifyFlag", &spec.tls_verify_flag);
    let (map_field, map) = single("registryMapFlag", &spec.registry_map_flag);
    let lists = [
        (format!("{field}.valueFlags"), &spec.value_flags),
        (format!("{field}.imageFlags"), &spec.image_flags),
        (format!("{field}.locationFlags"), &spec.location_flags),
        (format!("{field}.csvFlags"), &spec.csv_flags),
        (format!("{field}.removeFlags"), &spec.remove_flags),
        (
            format!("{field}.removeRegistryFlags"),
            &spec.remove_registry_flags,
        ),
    ];
    let mut named: Vec<(&str, &Vec<String>)> =
        lists.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    named.push((&tls_field, &tls));
    named.push((&map_field, &map));
    check_flags(&named)?;
    Ok(BuilderProfile {
        name: spec.name.clone(),
        repositories,
        executables: spec.executables.clone(),
        subcommands: spec.subcommands.clone(),
        image_arguments: spec.image_arguments.clone(),
        value_flags: spec.value_flags.clone(),
        image_flags: spec.image_flags.clone(),
        location_flags: spec.location_flags.clone(),
        csv_flags: spec.csv_flags.clone(),
        remove_flags: spec.remove_flags.clone(),
        remove_registry_flags: spec.remove_registry_flags.clone(),
        tls_verify_flag: spec.tls_verify_flag.clone(),
        registry_map_flag: spec.registry_map_flag.clone(),
    })
}

fn compile_wrapper(spec: &WrapperSpec, field: &str) -> Result<Wrapper, ConfigError> {
    check_name(&spec.name, &format!("{field}.name"))?;
    not_empty(&spec.executables, &format!("{field}.executables"))?;
    if spec.executables.is_empty() {
        return Err(error(format!("{field}.executables"), Problem::Empty));
    }
    let flag: Vec<String> = spec.executable_flag.iter().cloned().collect();
    check_flags(&[(&format!("{field}.executableFlag"), &flag)])?;
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

fn check_unique_names<'a>(
    names: impl Iterator<Item = &'a str>,
    field: &str,
) -> Result<(), ConfigError> {
    let names: Vec<&str> = names.collect();
    for (i, name) in names.iter().enumerate() {
        if let Some(j) = names[..i].iter().position(|earlier| earlier == name) {
            return Err(error(
                format!("{field}[{i}].name"),
                Problem::DuplicateName(format!("{field}[{j}]")),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_decision_record() {
        let config = Config::default();
        assert_eq!(config.rewrites.len(), 3);
        assert!(config
            .rewrites
            .iter()
            .all(|r| r.to_domain == "registry.k8s-lab.dev"));
        assert_eq!(config.image_pull_secrets(), ["registry-credentials"]);
        assert!(config.is_kind_enabled("Pod") && config.is_kind_enabled("Job"));
        assert!(!config.is_kind_enabled("Deployment"));
    }

    #[test]
    fn kaniko_images_match_by_repository() {
        let config = Config::from_yaml("kaniko: {images: [gcr.io/kaniko-project/executor, docker.io/martizih/kaniko, docker.io/library/kaniko]}").unwrap();
        let is = |image: &str| {
            config
                .builder_for_image(&ImageRef::parse(image).unwrap())
                .is_some_and(|builder| builder.name == "kaniko")
        };
        assert!(is("gcr.io/kaniko-project/executor:v1.23.2"));
        assert!(is("GCR.io/kaniko-project/executor@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001"));
        assert!(is("martizih/kaniko:v1.27.0-debug"));
        assert!(is("index.docker.io/martizih/kaniko"));
        assert!(is("kaniko:latest"), "official-image shorthand");
        assert!(!is("gcr.io/kaniko-project/executor-fork:v1"));
        assert!(!is("gcr.io/kaniko-project/warmer:v1"));
        assert!(!is("quay.io/martizih/kaniko"));
        assert!(!is("gcr.io:443/kaniko-project/executor"));
    }

    #[test]
    fn empty_file_means_defaults() {
        let config = Config::from_yaml("").unwrap();
        assert_eq!(config.file(), &ConfigFile::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_yaml("rewrites:\n- from: a.b:5000\n  too: x.y\n").unwrap_err();
        assert!(err.to_string().contains("too"), "{err}");
        let err = Config::from_yaml("imagePullSecret: [x]\n").unwrap_err();
        assert!(err.to_string().contains("imagePullSecret"), "{err}");
    }

    #[test]
    fn malformed_rule_is_named() {
        let err =
            Config::from_yaml("rewrites:\n- {from: 'a.b:5000', to: 'https://x.y'}\n").unwrap_err();
        assert_eq!(err.field, "rewrites[0].to");
    }

    #[test]
    fn chained_rules_are_refused() {
        let yaml = "rewrites:\n- {from: 'a.local:5000', to: 'b.local:5000'}\n- {from: 'b.local:5000', to: 'c.example'}\n";
        let err = Config::from_yaml(yaml).unwrap_err();
        assert_eq!(err.field, "rewrites[0].to");
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, field) in [
            ("imagePullSecrets: [Bad_Name]", "imagePullSecrets[0]"),
            ("kinds: [Pod, Gadget]", "kinds[1]"),
            (
                "kaniko: {images: ['gcr.io/kaniko-project/executor:v1']}",
                "kaniko.images[0]",
            ),
            (
                "kaniko: {removeFlags: ['skip-tls-verify']}",
                "kaniko.removeFlags[0]",
            ),
            ("rewrites: []", "rewrites"),
        ] {
            assert_eq!(Config::from_yaml(yaml).unwrap_err().field, field, "{yaml}");
        }
    }
}
