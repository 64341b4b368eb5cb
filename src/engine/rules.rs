//! The rules the engine applies, in the form it applies them. `config`
//! builds them from the file and validates them; what they mean is here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload::Workload;
use crate::reference::{strip_path_prefix, Domain, ImageRef, Repository};

/// `"true"` on an object leaves it untouched.
pub const SKIP_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/skip";
/// JSON object of `<container>` -> original image, for audit and reversal.
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/original-images";

/// Transports an image argument may name (Buildah's, from
/// containers/image); only `docker://`, the first, is a registry.
pub const IMAGE_TRANSPORTS: &[&str] = &[
    "docker://",
    "docker-archive:",
    "docker-daemon:",
    "containers-storage:",
    "oci:",
    "oci-archive:",
    "dir:",
    "sif:",
    "ostree:",
];

/// Everything the engine needs to decide, checked and normalised once.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Registry rewrites, first match wins.
    pub rewrites: Vec<RewriteRule>,
    /// Appended to `imagePullSecrets` when an image is on a rewrite target.
    pub image_pull_secrets: Vec<String>,
    /// Kinds whose pod templates are rewritten.
    pub kinds: Vec<&'static Workload>,
    /// Image builders, tried in order.
    pub builders: Vec<BuilderProfile>,
    pub wrappers: Vec<Wrapper>,
    /// Every rule's source and target host, lower-case, none a part of
    /// another: text that contains none of them names no rule registry
    /// (see [`Rules::mentions_a_registry`]).
    pub mentioned_hosts: Vec<String>,
}

/// The hosts of `rewrites` that text must contain to name one of them: a
/// host that contains another listed host is implied by it.
pub fn mentioned_hosts(rewrites: &[RewriteRule]) -> Vec<String> {
    minimal_hosts(rewrites.iter().flat_map(|r| [&r.from_host, &r.to_host]))
}

/// `hosts` lower-cased, less those that contain another: text that contains
/// none of the rest contains none of them.
pub fn minimal_hosts<'h>(hosts: impl IntoIterator<Item = &'h String>) -> Vec<String> {
    minimal_texts(hosts.into_iter().map(|h| h.to_ascii_lowercase()))
}

/// `texts` less those that contain another (and repeats): text that
/// contains none of the rest contains none of them.
pub fn minimal_texts(texts: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut texts: Vec<String> = texts.into_iter().collect();
    texts.sort_by_key(String::len);
    let mut minimal: Vec<String> = Vec::new();
    for text in texts {
        if !minimal.iter().any(|m| text.contains(m.as_str())) {
            minimal.push(text);
        }
    }
    minimal
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

/// One image builder, as the engine applies it (see `config::profiles`
/// for the built-in ones).
#[derive(Debug, Clone, Default)]
pub struct BuilderProfile {
    pub name: String,
    pub repositories: Vec<Repository>,
    pub executables: Vec<String>,
    pub subcommands: Vec<String>,
    pub image_arguments: Vec<String>,
    pub flags: FlagRoles,
    /// How the builder reads a registry credential; none: it gets none.
    pub credentials: Option<CredentialSpec>,
}

/// How a builder reads its registry credential, so that a build moved to
/// the HTTPS registry gets the pull secret there, and how to tell that a
/// container brings its own. The configuration file writes it as a
/// profile's `credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSpec {
    /// The directory the Secret is mounted at, read-only, holding
    /// `config.json` (the Secret's `.dockerconfigjson`).
    pub mount_path: String,
    /// The variable that points the builder there, when its image does not
    /// already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<CredentialEnv>,
    /// Variables that give the builder a credential of the container's own
    /// (`*` stands for any text).
    #[serde(default)]
    pub own_env: Vec<String>,
    /// Files the builder reads credentials from: a volume mounted at or
    /// above one is the container's own credential (`*` stands for one
    /// path component).
    #[serde(default)]
    pub own_paths: Vec<String>,
    /// Flags that give the builder a credential of its own.
    #[serde(default)]
    pub own_flags: Vec<String>,
    /// Variables and flags with which the mount could break the build, so
    /// the container is left as it is (Kaniko's `--kaniko-dir` removes
    /// `/kaniko` and everything mounted in it).
    #[serde(default)]
    pub unsafe_env: Vec<String>,
    #[serde(default)]
    pub unsafe_flags: Vec<String>,
}

/// `DOCKER_CONFIG=<the directory>` or `REGISTRY_AUTH_FILE=<the file>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialEnv {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvValue {
    /// The directory that holds `config.json`.
    Directory,
    /// `config.json` itself.
    File,
}

/// The file the Secret's `.dockerconfigjson` is written to in the mount.
pub const CREDENTIAL_FILE: &str = "config.json";
/// The build credential's volume, or its stem when a volume of the Pod has
/// that name already.
pub const CREDENTIAL_VOLUME: &str = "registry-rewriter-credentials";
/// The key of a `kubernetes.io/dockerconfigjson` Secret.
pub const SECRET_KEY: &str = ".dockerconfigjson";

impl CredentialSpec {
    /// The variable's value, when the builder needs one.
    pub fn env_value(&self) -> Option<(&str, String)> {
        let env = self.env.as_ref()?;
        let value = match env.value {
            EnvValue::Directory => self.mount_path.clone(),
            EnvValue::File => format!("{}/{CREDENTIAL_FILE}", self.mount_path),
        };
        Some((&env.name, value))
    }
}

/// What a builder's flags mean: one list per role. The configuration file
/// writes it inside a profile, under these keys; the engine reads it as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FlagRoles {
    /// Flags that take a value, so that the value is never read as a flag.
    pub value_flags: Vec<String>,
    /// Flags whose value is an image reference.
    pub image_flags: Vec<String>,
    /// Flags whose value is a registry location (`host[:port][/path]`).
    pub location_flags: Vec<String>,
    /// Flags whose value is BuildKit-style CSV: `name=` and `ref=` hold image
    /// references, and `registry.insecure=true` goes once all of them are on
    /// the HTTPS registry.
    pub csv_flags: Vec<String>,
    /// Boolean TLS-weakening flags, removed wherever they appear.
    pub remove_flags: Vec<String>,
    /// Registry-valued TLS-weakening flags, removed when they name a rewritten registry.
    pub remove_registry_flags: Vec<String>,
    /// A `--flag=false` that turns TLS verification off: removed where every
    /// registry the command reaches is HTTPS, kept with a warning where the
    /// command also pulls images the webhook cannot see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verify_flag: Option<String>,
    /// A flag that maps a registry to another for base-image pulls
    /// (`--registry-map=<internal>=<https>`); added for every internal registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_map_flag: Option<String>,
    /// Environment variables the builder reads as one of these flags
    /// (`KANIKO_REGISTRY_MIRROR: --registry-mirror`): their values are
    /// rewritten as that flag's would be.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env_flags: BTreeMap<String, String>,
}

/// A CI engine's step wrapper (see `config::profiles`).
#[derive(Debug, Clone, Default)]
pub struct Wrapper {
    pub name: String,
    pub executables: Vec<String>,
    pub subcommand: Option<String>,
    pub executable_flag: Option<String>,
}

/// Does `configured` name `executable`? A name without `/` matches the
/// program in any directory.
pub fn names_executable(configured: &str, executable: &str) -> bool {
    configured == executable
        || (!configured.contains('/')
            && executable
                .strip_suffix(configured)
                .is_some_and(|dir| dir.ends_with('/')))
}

impl BuilderProfile {
    pub fn runs(&self, executable: &str) -> bool {
        self.executables
            .iter()
            .any(|e| names_executable(e, executable))
    }

    pub fn is_image(&self, image: &ImageRef<'_>) -> bool {
        self.repositories.iter().any(|r| r.matches(image))
    }
}

impl Wrapper {
    pub fn wraps(&self, executable: &str) -> bool {
        self.executables
            .iter()
            .any(|e| names_executable(e, executable))
    }
}

impl RewriteRule {
    /// Does this rule's source registry match `domain` and `path`? Returns the
    /// rest of the path after the rule's prefix.
    pub fn match_source<'p>(&self, domain: &Domain<'_>, path: &'p str) -> Option<&'p str> {
        if !self.is_source(domain) {
            return None;
        }
        strip_path_prefix(path, &self.from_prefix)
    }

    /// Is `domain` this rule's source registry (host ignoring case, same port)?
    pub fn is_source(&self, domain: &Domain<'_>) -> bool {
        domain.port == self.from_port && domain.host.eq_ignore_ascii_case(&self.from_host)
    }

    pub fn is_target(&self, domain: &Domain<'_>) -> bool {
        domain.port == self.to_port && domain.host.eq_ignore_ascii_case(&self.to_host)
    }

    /// `text` names this rule's source registry (see [`Rules::named_source`]).
    pub fn is_named_in(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let host = self.from_host.as_bytes();
        let is_host_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        (0..bytes.len().saturating_sub(host.len() - 1)).any(|start| {
            let end = start + host.len();
            if !bytes[start..end].eq_ignore_ascii_case(host)
                || (start > 0 && is_host_byte(bytes[start - 1]))
            {
                return false;
            }
            let rest = &bytes[end..];
            let digits = |from: usize| {
                rest.get(from..)
                    .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
            };
            match (self.from_port, rest.first()) {
                (_, Some(b)) if is_host_byte(*b) => false,
                (Some(port), Some(b':')) => {
                    let n = digits(1);
                    n > 0
                        && std::str::from_utf8(&rest[1..1 + n])
                            .ok()
                            .and_then(|d| d.parse::<u16>().ok())
                            == Some(port)
                }
                (Some(_), _) => false,
                (None, Some(b':')) => digits(1) == 0,
                (None, _) => true,
            }
        })
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

impl Rules {
    /// Does `text` contain a rule's host, ignoring ASCII case? Every change
    /// the engine makes is to text that does: the admission pre-filter
    /// (`policy::prefilter`) is the same test in CEL.
    pub fn mentions_a_registry(&self, text: &str) -> bool {
        self.mentioned_hosts.iter().any(|host| {
            text.as_bytes()
                .windows(host.len())
                .any(|window| window.eq_ignore_ascii_case(host.as_bytes()))
        })
    }

    /// The first rule whose source registry `text` names at a host-and-port
    /// boundary (ASCII case ignored): `docker-registry:5000/x` names
    /// `docker-registry:5000`; `my-docker-registry:5000` and
    /// `docker-registry:50001` do not. What a leftover line reports, and
    /// what the guard's CEL tests (`policy::guard`).
    pub fn named_source(&self, text: &str) -> Option<&RewriteRule> {
        if !self.mentions_a_registry(text) {
            return None;
        }
        self.rewrites.iter().find(|rule| rule.is_named_in(text))
    }

    pub fn image_pull_secrets(&self) -> &[String] {
        &self.image_pull_secrets
    }

    pub fn is_kind_enabled(&self, kind: &str) -> bool {
        self.kinds.iter().any(|w| w.kind == kind)
    }

    /// The first rule whose source matches, and the rest of the path.
    pub fn find_rule<'p>(
        &self,
        domain: &Domain<'_>,
        path: &'p str,
    ) -> Option<(&RewriteRule, &'p str)> {
        self.rewrites
            .iter()
            .find_map(|rule| rule.match_source(domain, path).map(|rest| (rule, rest)))
    }

    pub fn is_rewrite_source(&self, domain: &Domain<'_>) -> bool {
        self.rewrites.iter().any(|r| r.is_source(domain))
    }

    pub fn is_rewrite_target(&self, domain: &Domain<'_>) -> bool {
        self.rewrites.iter().any(|r| r.is_target(domain))
    }

    /// The builder whose image this is, at any tag or digest.
    pub fn builder_for_image(&self, image: &ImageRef<'_>) -> Option<&BuilderProfile> {
        self.builders.iter().find(|b| b.is_image(image))
    }

    /// The builder that `executable` is.
    pub fn builder_for_executable(&self, executable: &str) -> Option<&BuilderProfile> {
        self.builders.iter().find(|b| b.runs(executable))
    }

    pub fn wrapper_for(&self, executable: &str) -> Option<&Wrapper> {
        self.wrappers.iter().find(|w| w.wraps(executable))
    }
}
