//! Image references by the distribution reference grammar, and registry
//! locations (`host[:port][/path]`) as Kaniko flags take them.
//!
//! Matching is done on parsed components: host (ASCII case-insensitive),
//! port (numeric) and whole path components. There is no substring or
//! regex matching anywhere, so `host:50001`, `host:5000.evil.io` and
//! `evil.io/host:5000/x` never match a rule for `host:5000`.

use std::fmt;

/// Longest name the grammar allows (host and path, without tag or digest).
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;
const DOCKER_HUB: &str = "docker.io";

/// A registry host with an optional port, as written in a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain<'a> {
    /// The whole `host[:port]` text, byte for byte.
    pub text: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
}

/// A parsed image reference. Every part borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// `None` when the reference names no registry (Docker Hub shorthand).
    pub domain: Option<Domain<'a>>,
    pub path: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// A registry location: `host[:port][/path]`, as `--registry-mirror` and
/// `--insecure-registry` take it. No tag, no digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub domain: Domain<'a>,
    pub path: Option<&'a str>,
}

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty reference")]
    Empty,
    #[error("invalid registry host {0:?}")]
    InvalidDomain(String),
    #[error("invalid repository path component {0:?}")]
    InvalidPath(String),
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("repository name longer than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
}

impl<'a> ImageRef<'a> {
    /// Parses `[domain/]path[:tag][@digest]`.
    pub fn parse(input: &'a str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((left, digest)) => {
                validate_digest(digest)?;
                (left, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' only when no '/' comes after it;
        // otherwise that ':' is a port separator.
        let (name, tag) = match name_and_tag.rfind(':') {
            Some(i) if !name_and_tag[i + 1..].contains('/') => {
                let tag = &name_and_tag[i + 1..];
                validate_tag(tag)?;
                (&name_and_tag[..i], Some(tag))
            }
            _ => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let (domain, path) = split_domain(name)?;
        validate_path(path)?;
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry as Docker resolves it: the explicit domain, or Docker Hub.
    pub fn registry_host(&self) -> &'a str {
        self.domain.map_or(DOCKER_HUB, |d| d.host)
    }
}

impl fmt::Display for ImageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = self.domain {
            write!(f, "{}/", domain.text)?;
        }
        f.write_str(self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A repository as Docker resolves it (Docker Hub's several names and its
/// `library/` prefix included), for comparing images by repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    host: String,
    port: Option<u16>,
    path: String,
}

impl Repository {
    pub fn of(image: &ImageRef<'_>) -> Self {
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

    /// Host (lower case, Docker Hub as `docker.io`), port and path.
    pub fn parts(&self) -> (&str, Option<u16>, &str) {
        (&self.host, self.port, &self.path)
    }

    /// Same repository, any tag or digest; allocation-free.
    pub fn matches(&self, image: &ImageRef<'_>) -> bool {
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

impl<'a> Location<'a> {
    /// Parses `host[:port][/path]`. The first component is always the host,
    /// even without a dot (Kaniko flags name registries, not images).
    pub fn parse(input: &'a str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain_text, path) = match input.split_once('/') {
            Some((domain, path)) => (domain, Some(path)),
            None => (input, None),
        };
        let domain = parse_domain(domain_text)?;
        if let Some(path) = path {
            validate_path(path)?;
        }
        Ok(Location { domain, path })
    }
}

impl<'a> Domain<'a> {
    pub fn parse(input: &'a str) -> Result<Self, ReferenceError> {
        parse_domain(input)
    }
}

/// Splits the leading domain off a name, as the distribution grammar does:
/// the first component is a domain when it contains '.' or ':', is
/// `localhost`, or has upper-case letters (which a path cannot have).
fn split_domain(name: &str) -> Result<(Option<Domain<'_>>, &str), ReferenceError> {
    let Some((first, rest)) = name.split_once('/') else {
        return Ok((None, name));
    };
    let looks_like_domain = first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase());
    if !looks_like_domain {
        return Ok((None, name));
    }
    Ok((Some(parse_domain(first)?), rest))
}

fn parse_domain(text: &str) -> Result<Domain<'_>, ReferenceError> {
    let invalid = || ReferenceError::InvalidDomain(text.to_owned());
    let (host, port) = if let Some(after_bracket) = text.strip_prefix('[') {
        // [IPv6] or [IPv6]:port
        let end = after_bracket.find(']').ok_or_else(invalid)?;
        let address = &after_bracket[..end];
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid());
        }
        let host = &text[..end + 2];
        match &text[end + 2..] {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if !host.starts_with('[') && !is_domain_name(host) {
        return Err(invalid());
    }
    let port = match port {
        None => None,
        Some(digits) => {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            Some(digits.parse::<u16>().map_err(|_| invalid())?)
        }
    };
    Ok(Domain { text, host, port })
}

/// `component ('.' component)*`, each component alphanumeric with inner '-'.
/// A trailing dot is not allowed by the grammar.
fn is_domain_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|component| {
            let bytes = component.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
}

/// Path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by '/'.
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidPath(component.to_owned()));
        }
    }
    Ok(())
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bytes = tag.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && is_word(bytes[0])
        && bytes
            .iter()
            .all(|b| is_word(*b) || *b == b'.' || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(tag.to_owned()))
    }
}

/// `algorithm ':' hex{32,}`, algorithm `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*`.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidDigest(digest.to_owned());
    let (algorithm, encoded) = digest.split_once(':').ok_or_else(invalid)?;
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphabetic()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric())
    });
    let encoded_ok = encoded.len() >= 32 && encoded.bytes().all(|b| b.is_ascii_hexdigit());
    if algorithm_ok && encoded_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Does `path` start with `prefix` on a component boundary? Returns the rest
/// (without the joining '/'), or `None`.
pub fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:8d2bdddf0000000000000000000000000000000000000000000000000000abcd";

    #[test]
    fn parses_every_part() {
        let text = format!("Host.Example:5000/team/app:v1.2@{DIGEST}");
        let r = ImageRef::parse(&text).unwrap();
        let d = r.domain.unwrap();
        assert_eq!(
            (d.host, d.port, d.text),
            ("Host.Example", Some(5000), "Host.Example:5000")
        );
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag, Some("v1.2"));
        assert_eq!(r.digest, Some(DIGEST));
        assert_eq!(r.to_string(), text);
    }

    #[test]
    fn docker_hub_shorthand_has_no_domain() {
        for text in ["nginx", "nginx:1.27", "library/nginx", "martizih/kaniko:v1"] {
            assert_eq!(ImageRef::parse(text).unwrap().domain, None, "{text}");
        }
        assert_eq!(
            ImageRef::parse("localhost/app")
                .unwrap()
                .domain
                .unwrap()
                .host,
            "localhost"
        );
    }

    #[test]
    fn port_is_not_a_tag() {
        let r = ImageRef::parse("host:5000/app").unwrap();
        assert_eq!(r.domain.unwrap().port, Some(5000));
        assert_eq!(r.tag, None);
    }

    #[test]
    fn rejects_what_the_grammar_rejects() {
        for text in [
            "",
            "host.:5000/app",
            "HOST:5000/App",
            "host:5000.evil.io/app", // port with a dot
            "host:99999/app",
            "höst.example/app",
            "host:5000//app",
            "host:5000/app:",
            "host:5000/app@sha256:short",
            "app:-tag",
            "/app",
        ] {
            assert!(ImageRef::parse(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn locations() {
        let l = Location::parse("docker-registry.registry.svc:5000/mirror").unwrap();
        assert_eq!(l.domain.port, Some(5000));
        assert_eq!(l.path, Some("mirror"));
        let bare = Location::parse("mirror").unwrap();
        assert_eq!((bare.domain.host, bare.path), ("mirror", None));
        assert!(Location::parse("https://mirror").is_err());
    }

    #[test]
    fn path_prefix_respects_components() {
        assert_eq!(strip_path_prefix("team/app", "team"), Some("app"));
        assert_eq!(strip_path_prefix("team", "team"), Some(""));
        assert_eq!(strip_path_prefix("teams/app", "team"), None);
        assert_eq!(strip_path_prefix("app", ""), Some("app"));
    }
}
