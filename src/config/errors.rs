//! What can be wrong with a configuration, naming the key.

use std::path::PathBuf;

use crate::reference::ReferenceError;

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
    #[error("{0:?} is not an absolute path")]
    NotAnAbsolutePath(String),
    #[error("{0:?} is not an environment variable name")]
    VariableName(String),
    #[error("{0:?} is none of the profile's imageFlags, locationFlags or registryMapFlag")]
    EnvFlagWithoutRole(String),
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
