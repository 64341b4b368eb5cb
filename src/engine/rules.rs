//! The rules the engine applies, in the form it applies them. `config`
//! builds them from the file and validates them; what they mean is here.

use super::workload::Workload;
use crate::reference::{strip_path_prefix, Domain, ImageRef, Repository};

/// `"true"` on an object leaves it untouched.
pub const SKIP_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/skip";
/// JSON object of `<container>` -> original image, for audit and reversal.
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "registry-rewriter.k8s-lab.dev/original-images";

/// Everything the engine needs to decide, checked and normalised once.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Registry rewrites, first match wins.
    pub rewrites: Vec<RewriteRule>,
    /// Appended to `imagePullSecrets` when an image is on a rewrite target.
    pub image_pull_secrets: Vec<String>,
    /// Kinds whose pod templates are rewritten.
    pub kinds: Vec<&'static Workload>,
    pub kaniko: KanikoRules,
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

/// How Kaniko containers are recognised and which of their flags matter.
#[derive(Debug, Clone, Default)]
pub struct KanikoRules {
    /// Repositories whose containers are Kaniko, at any tag or digest.
    pub repositories: Vec<Repository>,
    /// `command[0]` values that mark a container as Kaniko.
    pub executor_commands: Vec<String>,
    /// Flags whose value is an image reference to rewrite.
    pub image_flags: Vec<String>,
    /// Flags whose value is a registry location (`host[:port][/path]`) to rewrite.
    pub location_flags: Vec<String>,
    /// Boolean TLS-weakening flags, removed wherever they appear.
    pub remove_flags: Vec<String>,
    /// Registry-valued TLS-weakening flags, removed when they name a rewritten registry.
    pub remove_registry_flags: Vec<String>,
    /// Add `--registry-map` from every internal registry to its HTTPS host.
    pub registry_map: bool,
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

    /// Is `image` one of the configured Kaniko repositories (any tag/digest)?
    pub fn is_kaniko_image(&self, image: &ImageRef<'_>) -> bool {
        self.kaniko.repositories.iter().any(|r| r.matches(image))
    }
}
