//! Configuration: the file format, its built-in defaults (the registry
//! decision's values) and strict validation into the form the engine uses.
//!
//! A key left out of the file keeps its default; a key given replaces the
//! default whole (lists are not merged).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::workload::WORKLOADS;
use crate::reference::{Domain, ImageRef, Location};

/// Annotations this tool reads and writes live under this prefix.
pub const ANNOTATION_PREFIX: &str = "registry-rewriter.k8s-lab.dev/";
/// `"true"` on an object leaves it untouched.
pub const SKIP_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/skip";
/// JSON object of `<container>` -> original image, for audit and reversal.
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/original-images";

/// The configuration file, as written by users and printed by `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Registry rewrites, first match wins.
    #[serde(default = "defaults::rewrites")]
    pub rewrites: Vec<RewriteRuleSpec>,
    /// Secrets appended to `imagePullSecrets` when an image is on a rewrite target.
    #[serde(default = "defaults::image_pull_secrets")]
    pub image_pull_secrets: Vec<String>,
    #[serde(default)]
    pub kaniko: KanikoSpec,
    /// Kinds whose pod templates are rewritten.
    #[serde(default = "defaults::kinds")]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KanikoSpec {
    /// Repositories (no tag) whose containers are Kaniko, at any tag or digest.
    #[serde(default = "defaults::kaniko_images")]
    pub images: Vec<String>,
    /// `command[0]` values that mark a container as Kaniko.
    #[serde(default = "defaults::kaniko_executors")]
    pub executor_commands: Vec<String>,
    /// Flags whose value is an image reference to rewrite.
    #[serde(default = "defaults::image_flags")]
    pub image_flags: Vec<String>,
    /// Flags whose value is a registry location (`host[:port][/path]`) to rewrite.
    #[serde(default = "defaults::location_flags")]
    pub location_flags: Vec<String>,
    /// Boolean TLS-weakening flags, removed wherever they appear.
    #[serde(default = "defaults::remove_flags")]
    pub remove_flags: Vec<String>,
    /// Registry-valued TLS-weakening flags, removed when they name a rewritten registry.
    #[serde(default = "defaults::remove_registry_flags")]
    pub remove_registry_flags: Vec<String>,
    /// Add `--registry-map` from every internal registry to its HTTPS host.
    #[serde(default = "defaults::registry_map")]
    pub registry_map: bool,
}

impl Default for KanikoSpec {
    fn default() -> Self {
        KanikoSpec {
            images: defaults::kaniko_images(),
            executor_commands: defaults::kaniko_executors(),
            image_flags: defaults::image_flags(),
            location_flags: defaults::location_flags(),
            remove_flags: defaults::remove_flags(),
            remove_registry_flags: defaults::remove_registry_flags(),
            registry_map: defaults::registry_map(),
        }
    }
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            rewrites: defaults::rewrites(),
            image_pull_secrets: defaults::image_pull_secrets(),
            kaniko: KanikoSpec::default(),
            kinds: defaults::kinds(),
        }
    }
}

mod defaults {
    use super::RewriteRuleSpec;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    pub fn rewrites() -> Vec<RewriteRuleSpec> {
        [
            "docker-registry.registry.svc.cluster.local:5000",
            "docker-registry.registry.svc:5000",
            "docker-registry.registry:5000",
        ]
        .into_iter()
        .map(|from| RewriteRuleSpec {
            from: from.to_owned(),
            to: "registry.k8s-lab.dev".to_owned(),
        })
        .collect()
    }

    pub fn image_pull_secrets() -> Vec<String> {
        strings(&["registry-credentials"])
    }

    pub fn kaniko_images() -> Vec<String> {
        strings(&[
            // The original project, archived in 2025.
            "gcr.io/kaniko-project/executor",
            // Chainguard's maintained fork.
            "cgr.dev/chainguard/kaniko",
            "cgr.dev/chainguard/kaniko-fips",
            // The osscontainertools community fork.
            "docker.io/martizih/kaniko",
        ])
    }

    pub fn kaniko_executors() -> Vec<String> {
        strings(&["/kaniko/executor"])
    }

    pub fn image_flags() -> Vec<String> {
        strings(&["--destination", "-d", "--cache-repo"])
    }

    pub fn location_flags() -> Vec<String> {
        strings(&["--registry-mirror"])
    }

    pub fn remove_flags() -> Vec<String> {
        strings(&[
            "--skip-tls-verify",
            "--skip-tls-verify-pull",
            "--insecure",
            "--insecure-pull",
        ])
    }

    pub fn remove_registry_flags() -> Vec<String> {
        strings(&["--insecure-registry", "--skip-tls-verify-registry"])
    }

    pub fn registry_map() -> bool {
        true
    }

    pub fn kinds() -> Vec<String> {
        strings(&["Pod", "Job"])
    }
}

/// A validation failure, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("config file {path}: {source}")]
    Invalid { path: String, source: ConfigError },
}

/// A rewrite rule, parsed and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRule {
    /// Lower-case host of the internal registry.
    pub from_host: String,
    pub from_port: Option<u16>,
    /// Path prefix that must match whole components; empty for none.
    pub from_prefix: String,
    /// The rule's `from` as written, for `--registry-map` keys and messages.
    pub from_text: String,
    /// `host[:port]` of the HTTPS registry, as written.
    pub to_domain: String,
    pub to_host: String,
    pub to_port: Option<u16>,
    /// Path prefix put in front of the remaining path; empty for none.
    pub to_prefix: String,
}

impl RewriteRule {
    /// Does this rule's source registry match `domain` and `path`? Returns the
    /// rest of the path after the rule's prefix.
    pub fn match_source<'p>(&self, domain: &Domain<'_>, path: &'p str) -> Option<&'p str> {
        if !self.is_source(domain) {
            return None;
        }
        crate::reference::strip_path_prefix(path, &self.from_prefix)
    }

    /// Is `domain` this rule's source registry (host ignoring case, same port)?
    pub fn is_source(&self, domain: &Domain<'_>) -> bool {
        domain.port == self.from_port && domain.host.eq_ignore_ascii_case(&self.from_host)
    }

    pub fn is_target(&self, domain: &Domain<'_>) -> bool {
        domain.port == self.to_port && domain.host.eq_ignore_ascii_case(&self.to_host)
    }

    /// The new `domain/path` for a matched remainder.
    pub fn rewrite_name(&self, rest: &str) -> String {
        let mut name = self.to_domain.clone();
        for part in [self.to_prefix.as_str(), rest] {
            if !part.is_empty() {
                name.push('/');
                name.push_str(part);
            }
        }
        name
    }
}

/// The validated configuration the engine borrows.
#[derive(Debug, Clone)]
pub struct Config {
    file: ConfigFile,
    pub rules: Vec<RewriteRule>,
    /// Kaniko repositories, normalised once: Docker Hub host and path.
    kaniko_repositories: Vec<Repository>,
}

/// A repository as Docker resolves it, for comparing images by repository.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Repository {
    host: String,
    port: Option<u16>,
    path: String,
}

impl Repository {
    fn of(image: &ImageRef<'_>) -> Self {
        let host = canonical_host(image.registry_host()).to_ascii_lowercase();
        let path = match image.path.contains('/') {
            false if host == DOCKER_HUB => format!("library/{}", image.path),
            _ => image.path.to_owned(),
        };
        Repository {
            host,
            port: image.domain.and_then(|d| d.port),
            path,
        }
    }

    /// Same repository, any tag or digest; allocation-free.
    fn matches(&self, image: &ImageRef<'_>) -> bool {
        let path_matches = match image.path.contains('/') {
            false if self.host == DOCKER_HUB => {
                self.path.strip_prefix("library/") == Some(image.path)
            }
            _ => self.path == image.path,
        };
        path_matches
            && image.domain.and_then(|d| d.port) == self.port
            && canonical_host(image.registry_host()).eq_ignore_ascii_case(&self.host)
    }
}

const DOCKER_HUB: &str = "docker.io";

/// Docker Hub answers to several names.
fn canonical_host(host: &str) -> &str {
    if host.eq_ignore_ascii_case("index.docker.io")
        || host.eq_ignore_ascii_case("registry-1.docker.io")
    {
        DOCKER_HUB
    } else {
        host
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
        let rules = file
            .rewrites
            .iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(i, rule))
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err(error("rewrites", "at least one rule is required"));
        }
        check_rules_are_stable(&rules)?;
        for (i, name) in file.image_pull_secrets.iter().enumerate() {
            if !is_dns_subdomain(name) {
                return Err(error(
                    format!("imagePullSecrets[{i}]"),
                    format!("{name:?} is not a valid Secret name (lower-case DNS subdomain)"),
                ));
            }
        }
        let kaniko_repositories = file
            .kaniko
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let field = || format!("kaniko.images[{i}]");
                let parsed = ImageRef::parse(image).map_err(|e| error(field(), e.to_string()))?;
                if parsed.tag.is_some() || parsed.digest.is_some() {
                    return Err(error(
                        field(),
                        format!("{image:?} has a tag or digest; give the repository alone, every tag matches"),
                    ));
                }
                Ok(Repository::of(&parsed))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let flag_lists = [
            ("kaniko.imageFlags", &file.kaniko.image_flags),
            ("kaniko.locationFlags", &file.kaniko.location_flags),
            ("kaniko.removeFlags", &file.kaniko.remove_flags),
            (
                "kaniko.removeRegistryFlags",
                &file.kaniko.remove_registry_flags,
            ),
        ];
        for (field, flags) in flag_lists {
            for (i, flag) in flags.iter().enumerate() {
                let valid = flag.starts_with('-')
                    && flag.len() > 1
                    && !flag.contains(['=', ' '])
                    && flag != "--";
                if !valid {
                    return Err(error(
                        format!("{field}[{i}]"),
                        format!("{flag:?} is not a flag name like --destination or -d"),
                    ));
                }
            }
        }
        for (i, command) in file.kaniko.executor_commands.iter().enumerate() {
            if command.is_empty() {
                return Err(error(
                    format!("kaniko.executorCommands[{i}]"),
                    "must not be empty",
                ));
            }
        }
        for (i, kind) in file.kinds.iter().enumerate() {
            if !WORKLOADS.iter().any(|w| w.kind == kind) {
                let known: Vec<&str> = WORKLOADS.iter().map(|w| w.kind).collect();
                return Err(error(
                    format!("kinds[{i}]"),
                    format!("unknown kind {kind:?}; supported: {}", known.join(", ")),
                ));
            }
        }
        Ok(Config {
            file,
            rules,
            kaniko_repositories,
        })
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
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
            path: display.clone(),
            source,
        })?;
        Config::from_yaml(&text).map_err(|source| {
            if source.field.is_empty() {
                ConfigLoadError::Parse {
                    path: display,
                    reason: source.reason,
                }
            } else {
                ConfigLoadError::Invalid {
                    path: display,
                    source,
                }
            }
        })
    }

    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    pub fn kaniko(&self) -> &KanikoSpec {
        &self.file.kaniko
    }

    pub fn image_pull_secrets(&self) -> &[String] {
        &self.file.image_pull_secrets
    }

    pub fn is_kind_enabled(&self, kind: &str) -> bool {
        self.file.kinds.iter().any(|k| k == kind)
    }

    /// The first rule whose source matches, and the rest of the path.
    pub fn find_rule<'p>(
        &self,
        domain: &Domain<'_>,
        path: &'p str,
    ) -> Option<(&RewriteRule, &'p str)> {
        self.rules
            .iter()
            .find_map(|rule| rule.match_source(domain, path).map(|rest| (rule, rest)))
    }

    pub fn is_rewrite_source(&self, domain: &Domain<'_>) -> bool {
        self.rules.iter().any(|r| r.is_source(domain))
    }

    pub fn is_rewrite_target(&self, domain: &Domain<'_>) -> bool {
        self.rules.iter().any(|r| r.is_target(domain))
    }

    /// Is `image` one of the configured Kaniko repositories (any tag/digest)?
    pub fn is_kaniko_image(&self, image: &ImageRef<'_>) -> bool {
        self.kaniko_repositories.iter().any(|r| r.matches(image))
    }
}

fn error(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// serde_yaml_ng puts the path of the failing key in front of its message
/// (`rewrites[0]: unknown field ...`); split it off into the field. A
/// syntax error has no key, and an empty field.
fn yaml_error(e: serde_yaml_ng::Error) -> ConfigError {
    let message = e.to_string();
    match message.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => error(path, reason),
        _ => error("", message),
    }
}

fn compile_rule(index: usize, rule: &RewriteRuleSpec) -> Result<RewriteRule, ConfigError> {
    let from = Location::parse(&rule.from).map_err(|e| {
        error(
            format!("rewrites[{index}].from"),
            format!("{:?}: {e}", rule.from),
        )
    })?;
    let to = Location::parse(&rule.to).map_err(|e| {
        error(
            format!("rewrites[{index}].to"),
            format!("{:?}: {e}", rule.to),
        )
    })?;
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
                format!(
                    "{} is itself rewritten by rewrites[{j}] ({}); a rule's target must not be a rewritten registry",
                    rule.to_domain, other.from_text
                ),
            ));
        }
        for (j, earlier) in rules[..i].iter().enumerate() {
            if earlier.from_host == rule.from_host
                && earlier.from_port == rule.from_port
                && earlier.from_prefix == rule.from_prefix
            {
                return Err(error(
                    format!("rewrites[{i}].from"),
                    format!("duplicates rewrites[{j}].from ({})", earlier.from_text),
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
        assert_eq!(config.rules.len(), 3);
        assert!(config
            .rules
            .iter()
            .all(|r| r.to_domain == "registry.k8s-lab.dev"));
        assert_eq!(config.image_pull_secrets(), ["registry-credentials"]);
        assert!(config.is_kind_enabled("Pod") && config.is_kind_enabled("Job"));
        assert!(!config.is_kind_enabled("Deployment"));
    }

    #[test]
    fn kaniko_images_match_by_repository() {
        let config = Config::from_yaml("kaniko: {images: [gcr.io/kaniko-project/executor, docker.io/martizih/kaniko, docker.io/library/kaniko]}").unwrap();
        let is = |image: &str| config.is_kaniko_image(&ImageRef::parse(image).unwrap());
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
