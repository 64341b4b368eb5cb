//! The distribution reference grammar of `reference.rs`, as anchored RE2
//! expressions for CEL's `matches`. Hosts are matched ASCII
//! case-insensitively with explicit classes (`[dD]`), never `(?i)`, which
//! in RE2 also folds non-ASCII letters (`ſ` matches `s`, `K` matches `k`).
//! Ports allow leading zeros, as `u16` parsing does.

use crate::reference::Repository;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
/// `:` and `[\w][\w.-]{0,127}`
const TAG: &str = r"(?::[\w][\w.-]{0,127})?";
/// `@` and `algorithm ':' hex{32,}`
const DIGEST: &str = r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?";

fn path() -> String {
    format!("{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
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
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `host[:port]` as a domain of the grammar: host caseless, port numeric.
pub fn domain(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{}:0*{port}", caseless(host)),
        None => caseless(host),
    }
}

/// An image reference on `domain` whose path starts with `prefix` on a
/// component boundary, with any tag and digest.
pub fn image_on(domain: &str, prefix: &str) -> String {
    let path = path();
    let rest = if prefix.is_empty() {
        path
    } else {
        format!("{}(?:/{path})?", escape(prefix))
    };
    format!("^{domain}/{rest}{TAG}{DIGEST}$")
}

/// A registry location (`host[:port][/path]`) on `domain` whose path starts
/// with `prefix` on a component boundary.
pub fn location_on(domain: &str, prefix: &str) -> String {
    let path = path();
    if prefix.is_empty() {
        format!("^{domain}(?:/{path})?$")
    } else {
        format!("^{domain}/{}(?:/{path})?$", escape(prefix))
    }
}

/// Exactly one of `domains`.
pub fn any_domain(domains: &[String]) -> String {
    format!("^(?:{})$", domains.join("|"))
}

/// An image of `repository` at any tag or digest, as [`Repository::matches`]
/// sees it: Docker Hub under any of its names, or none, and its `library/`.
pub fn repository(repository: &Repository) -> String {
    let (host, port, path) = repository.parts();
    let path_re = escape(path);
    let body = if host == "docker.io" {
        let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"]
            .map(caseless)
            .join("|");
        match path.strip_prefix("library/") {
            Some(name) => format!("(?:(?:{hub})/)?(?:library/)?{}", escape(name)),
            None => format!("(?:(?:{hub})/)?{path_re}"),
        }
    } else {
        format!("{}/{path_re}", domain(host, port))
    };
    format!("^{body}{TAG}{DIGEST}$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caseless_letters_and_escaped_dots() {
        assert_eq!(caseless("a.b-1"), r"[aA]\.[bB]-1");
        assert_eq!(domain("h", Some(5000)), "[hH]:0*5000");
    }
}
