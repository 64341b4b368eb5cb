//! Configuration: the file format, its built-in defaults (the registry
//! decision's values) and strict validation into the engine's [`Rules`].
//!
//! A key left out of the file keeps its default; a key given replaces the
//! default whole (lists are not merged).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod profiles;

use profiles::strings;
pub use profiles::{BuilderSpec, Unknown, WrapperSpec};

use crate::engine::rules::{BuilderProfile, FlagRoles, RewriteRule, Rules, Wrapper};
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
    /// The Kaniko profile's keys under their first names; kept so that
    /// files written before `builders` load as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kaniko: Option<LegacyKaniko>,
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

/// `kaniko:` as it was before `builders`: each key sets the same key of the
/// profile named `kaniko`, under its first name (`executorCommands` is
/// `executables`, and `registryMap: false` takes `registryMapFlag` away).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LegacyKaniko(pub serde_yaml_ng::Mapping);

/// The keys `kaniko:` had: each as written there, and as a profile names it.
const LEGACY_KANIKO_KEYS: &[(&str, &str)] = &[
    ("images", "images"),
    ("executorCommands", "executables"),
    ("imageFlags", "imageFlags"),
    ("locationFlags", "locationFlags"),
    ("removeFlags", "removeFlags"),
    ("removeRegistryFlags", "removeRegistryFlags"),
];

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
            profiles: profiles::profiles(),
            wrappers: profiles::wrappers(),
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
/// engine applies.
#[derive(Debug, Clone)]
pub struct Config {
    file: ConfigFile,
    rules: Rules,
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

    /// The rules, for the engine and every back end.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn into_rules(self) -> Rules {
        self.rules
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
    ])
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
    Ok(BuilderProfile {
        name: spec.name.clone(),
        repositories,
        executables: spec.executables.clone(),
        subcommands: spec.subcommands.clone(),
        image_arguments: spec.image_arguments.clone(),
        flags: spec.flags.clone(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_decision_record() {
        let config = Config::default().into_rules();
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
                .rules()
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
