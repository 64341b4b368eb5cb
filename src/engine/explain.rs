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
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Image => "image",
            ChangeKind::BuildArg => "build_arg",
            ChangeKind::BuildFlagRemoved => "build_flag_removed",
            ChangeKind::RegistryMap => "registry_map",
            ChangeKind::ImagePullSecret => "image_pull_secret",
        }
    }
}

/// One change, explained in a line a user can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub message: String,
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
