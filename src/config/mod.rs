//! Configuration: the file format, its built-in defaults (the registry
//! decision's values) and strict validation into the engine's [`Rules`].
//!
//! A key left out of the file keeps its default; a key given replaces the
//! default whole (lists are not merged).

use std::path::Path;

use serde::{Deserialize, Serialize};

mod compile;
mod credentials;
mod errors;
mod profiles;

pub use errors::{ConfigError, ConfigFileError, ConfigLoadError, Problem};
use profiles::strings;
pub use profiles::{BuilderSpec, Unknown, WrapperSpec};

use crate::engine::rules::Rules;

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
        let rules = compile::rules(&file)?;
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

pub(super) fn error(field: impl Into<String>, problem: Problem) -> ConfigError {
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

#[cfg(test)]
mod tests;
