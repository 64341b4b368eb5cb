//! What a change is called, and how values are quoted in the line that
//! explains it (a warning that kubectl prints, and a line of `mutate`).

use std::borrow::Cow;

/// What kind of change a line explains; also the `field` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Image,
    BuildArg,
    BuildFlagRemoved,
    RegistryMap,
    ImagePullSecret,
    /// The pull secret mounted where a builder reads its credential.
    BuildCredential,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Image => "image",
            ChangeKind::BuildArg => "build_arg",
            ChangeKind::BuildFlagRemoved => "build_flag_removed",
            ChangeKind::RegistryMap => "registry_map",
            ChangeKind::ImagePullSecret => "image_pull_secret",
            ChangeKind::BuildCredential => "build_credential",
        }
    }
}

/// One change, explained in a line a user can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub message: String,
}

/// `X (why)` as `X`.
fn without_reason(text: &str) -> &str {
    text.strip_suffix(')')
        .and_then(|t| t.rsplit_once(" ("))
        .map_or(text, |(what, _)| what)
}

impl Change {
    /// The line's parts, for a table: where, what was there, what is there
    /// now. Every line is written as `FIELD: OLD -> NEW`, `FIELD: removed
    /// OLD (why)` or `FIELD: added NEW (why)`; a flag in front of a value
    /// (`--destination OLD -> NEW`, `--output: removed ...`) belongs to the
    /// field.
    pub fn parts(&self) -> (String, Option<&str>, Option<&str>) {
        let (field, rest) = self.message.split_once(": ").unwrap_or(("", &self.message));
        let mut field = field.to_owned();
        let mut rest = rest;
        if let Some((flag, tail)) = rest.split_once(": ") {
            if tail.starts_with("removed ") || tail.starts_with("added ") {
                field = format!("{field} {flag}");
                rest = tail;
            }
        }
        if let Some(old) = rest.strip_prefix("removed ") {
            return (field, Some(without_reason(old)), None);
        }
        if let Some(new) = rest.strip_prefix("added ") {
            return (field, None, Some(without_reason(new)));
        }
        match rest.split_once(" -> ") {
            Some((old, new)) => match old.split_once(' ') {
                Some((flag, old)) => (format!("{field} {flag}"), Some(old), Some(new)),
                None => (field, Some(old), Some(new)),
            },
            None => (field, None, Some(rest)),
        }
    }
}

/// Longest value quoted in full in an explanation line; API servers
/// truncate long warnings, so longer values are shortened in the middle.
const SHOWN_CHARS_MAX: usize = 160;

/// A value as shown in an explanation line: control characters replaced,
/// and shortened in the middle when very long.
pub(crate) fn shown(value: &str) -> Cow<'_, str> {
    // The usual case, checked without decoding: short printable ASCII.
    if value.len() <= SHOWN_CHARS_MAX && value.bytes().all(|b| (b' '..b'\x7f').contains(&b)) {
        return Cow::Borrowed(value);
    }
    let clean = !value.chars().any(char::is_control);
    let count = value.chars().count();
    if clean && count <= SHOWN_CHARS_MAX {
        return Cow::Borrowed(value);
    }
    let replace = |c: char| if c.is_control() { '?' } else { c };
    if count <= SHOWN_CHARS_MAX {
        return Cow::Owned(value.chars().map(replace).collect());
    }
    let head: String = value
        .chars()
        .take(SHOWN_CHARS_MAX - 40)
        .map(replace)
        .collect();
    let tail: String = value.chars().skip(count - 30).map(replace).collect();
    Cow::Owned(format!("{head}...{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::image(
        "containers[web].image: a:5000/x -> b/x",
        "containers[web].image",
        Some("a:5000/x"),
        Some("b/x")
    )]
    #[case::flag_value(
        "containers[k].args: --destination a:5000/x -> b/x",
        "containers[k].args --destination",
        Some("a:5000/x"),
        Some("b/x")
    )]
    #[case::removed(
        "containers[k].args: removed --insecure (the HTTPS registry needs no TLS exception)",
        "containers[k].args",
        Some("--insecure"),
        None
    )]
    #[case::removed_from_a_value(
        "containers[b].args (buildkit): --output: removed registry.insecure=true (why)",
        "containers[b].args (buildkit) --output",
        Some("registry.insecure=true"),
        None
    )]
    #[case::added(
        "containers[k].args: added --registry-map=a=b (why)",
        "containers[k].args",
        None,
        Some("--registry-map=a=b")
    )]
    #[case::pull_secret(
        "imagePullSecrets: added registry-credentials",
        "imagePullSecrets",
        None,
        Some("registry-credentials")
    )]
    fn each_kind_of_line_splits_into_its_parts(
        #[case] message: &str,
        #[case] field: &str,
        #[case] old: Option<&str>,
        #[case] new: Option<&str>,
    ) {
        let change = Change {
            kind: ChangeKind::BuildArg,
            message: message.to_owned(),
        };
        assert_eq!(change.parts(), (field.to_owned(), old, new));
    }
}
