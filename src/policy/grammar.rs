//! The distribution reference grammar of `reference.rs`, as anchored RE2
//! patterns for CEL's `matches`. Registries are compared as text (host
//! lower-cased, port as a number) before any pattern runs, because CEL
//! prices a match by the pattern's length times the input's.
//!
//! Where a host must be matched by a pattern, its letters get explicit
//! classes (`[dD]`), never `(?i)`, which in RE2 also folds non-ASCII
//! letters (`ſ` matches `s`, the Kelvin sign matches `k`).

use crate::reference::Repository;

/// Path components (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`) joined by `/`,
/// written as one run: a `/` is one more separator between alphanumerics.
const PATH: &str = r"[a-z0-9]+(?:(?:[._/]|__|-+)[a-z0-9]+)*";
/// `:` and `[\w][\w.-]{0,127}`
const TAG: &str = r"(?::\w[\w.-]{0,127})?";
/// `@` and `algorithm ':' hex{32,}`
const DIGEST: &str = r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?";

/// What follows an image's registry: path, tag and digest.
pub fn image_rest() -> String {
    format!("^{PATH}{TAG}{DIGEST}$")
}

/// As [`image_rest`], for a rest without `@`: no digest.
pub fn tagged_rest() -> String {
    format!("^{PATH}{TAG}$")
}

/// What follows a location's registry: a path.
pub fn location_rest() -> String {
    format!("^{PATH}$")
}

/// A port equal to `port` (leading zeros allowed, as `u16` parsing does).
pub fn port(port: u16) -> String {
    format!("^0*{port}$")
}

/// A literal, with every ASCII letter in both cases.
fn caseless(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 4);
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push('[');
            out.push(c.to_ascii_lowercase());
            out.push(c.to_ascii_uppercase());
            out.push(']');
        } else {
            out.push_str(&escape(&c.to_string()));
        }
    }
    out
}

/// A literal, escaped for RE2.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An image of `repository` at any tag or digest, as [`Repository::matches`]
/// sees it: Docker Hub under any of its names, or none, and its `library/`.
/// Every match contains [`repository_text`] as written: the pattern is built
/// around it.
pub fn repository(repository: &Repository) -> String {
    let (host, port, path) = repository.parts();
    let text = escape(repository_text(repository));
    let body = if host == "docker.io" {
        let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"]
            .map(caseless)
            .join("|");
        let library = if path.starts_with("library/") {
            "(?:library/)?"
        } else {
            ""
        };
        format!("(?:(?:{hub})/)?{library}{text}")
    } else {
        let domain = match port {
            Some(port) => format!("{}:0*{port}", caseless(host)),
            None => caseless(host),
        };
        format!("{domain}/{text}")
    };
    format!("^{body}{TAG}{DIGEST}$")
}

/// What every image of `repository` contains as written: its path, or a
/// Docker Hub library image's name. A `contains` on it before the pattern
/// spares most images the match.
pub fn repository_text(repository: &Repository) -> &str {
    let (host, _, path) = repository.parts();
    match path.strip_prefix("library/") {
        Some(name) if host == "docker.io" => name,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ImageRef;
    use rstest::rstest;

    #[test]
    fn caseless_letters_and_escaped_dots() {
        assert_eq!(caseless("a.b-1"), r"[aA]\.[bB]-1");
    }

    /// Every image of the repository contains its text, under any of the
    /// names the repository answers to.
    #[rstest]
    #[case::library("docker.io/library/busybox", "busybox:1.36")]
    #[case::library_by_hub_name(
        "busybox",
        "Index.Docker.IO/library/busybox@sha256:0123456789abcdef0123456789abcdef"
    )]
    #[case::hub_user(
        "docker.io/moby/buildkit",
        "registry-1.docker.io/moby/buildkit:v0.15.2"
    )]
    #[case::host_and_port("Quay.io:443/buildah/stable", "quay.IO:0443/buildah/stable:v1")]
    fn an_image_of_the_repository_contains_its_text(#[case] repository: &str, #[case] image: &str) {
        let repository = Repository::of(&ImageRef::parse(repository).unwrap());
        assert!(repository.matches(&ImageRef::parse(image).unwrap()));
        assert!(image.contains(repository_text(&repository)));
    }
}
