//! What `mutate` tells a person: a line per change and warning, a table
//! as `kubectl get` prints one, and a summary line.

use super::{Finding, Kinds, Previewed, Row};
use crate::engine::ChangeKind;

/// The changes as `kubectl get` would print them: one row each, columns
/// aligned, `<none>` where a change has no old or no new value.
pub fn table(rows: &[Row]) -> String {
    let mut lines: Vec<[String; 6]> = vec![[
        "NAMESPACE".into(),
        "KIND".into(),
        "NAME".into(),
        "FIELD".into(),
        "OLD".into(),
        "NEW".into(),
    ]];
    for row in rows {
        let (field, old, new) = row.finding.parts();
        lines.push([
            row.namespace.clone(),
            row.kind.clone(),
            row.name.clone(),
            field,
            old.unwrap_or("<none>").to_owned(),
            new.unwrap_or("<none>").to_owned(),
        ]);
    }
    let mut widths = [0; 6];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 < line.len() {
                text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `3 of 12 documents would change: 4 images, 2 build args, 1 pull secret`.
pub fn summary(previewed: &[Previewed]) -> String {
    let objects: usize = previewed.iter().map(|p| p.objects).sum();
    let changed: usize = previewed.iter().map(|p| p.changed_objects).sum();
    let count = |wanted: &[ChangeKind]| {
        previewed
            .iter()
            .flat_map(|p| &p.rows)
            .filter(|row| matches!(&row.finding, Finding::Change(c) if wanted.contains(&c.kind)))
            .count()
    };
    let leftovers = previewed
        .iter()
        .flat_map(|p| &p.rows)
        .filter(|row| matches!(row.finding, Finding::Leftover(_)))
        .count();
    let kinds = [
        (count(&[ChangeKind::Image]), "image"),
        (
            count(&[
                ChangeKind::BuildArg,
                ChangeKind::BuildFlagRemoved,
                ChangeKind::RegistryMap,
            ]),
            "build arg",
        ),
        (count(&[ChangeKind::ImagePullSecret]), "pull secret"),
        (count(&[ChangeKind::BuildCredential]), "build credential"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    let line = format!("{changed} of {objects} documents would change");
    let line = match parts.is_empty() {
        true => line,
        false => format!("{line}: {}", parts.join(", ")),
    };
    match leftovers {
        0 => line,
        1 => format!("{line}; 1 value left naming the internal registry"),
        n => format!("{line}; {n} values left naming the internal registry"),
    }
}

/// The explanation and warning lines for stderr, each after its document's
/// name. A table says the same as the explanations, so with `Kinds::Every`
/// only the warnings are listed.
pub fn lines(previewed: &[Previewed], kinds: Kinds) -> String {
    let mut out = String::new();
    for document in previewed {
        if kinds != Kinds::Every {
            for change in &document.changes {
                out.push_str(&format!("{}: {}\n", document.name, change.message));
            }
        }
        for warning in &document.warnings {
            out.push_str(&format!("{}: warning: {warning}\n", document.name));
        }
    }
    out
}
