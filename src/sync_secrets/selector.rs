//! `--namespace-selector`, in kubectl's label selector syntax, as kube's
//! [`Selector`]: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//! `k notin (a,b)`, joined by commas.

use kube::core::{Expression, Selector};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--namespace-selector: {problem} in {text:?}")]
pub struct SelectorError {
    text: String,
    problem: &'static str,
}

pub fn parse(text: &str) -> Result<Selector, SelectorError> {
    let error = |problem| SelectorError {
        text: text.to_owned(),
        problem,
    };
    let mut expressions = Vec::new();
    for requirement in split_requirements(text).map_err(error)? {
        expressions.push(requirement_of(requirement.trim()).map_err(error)?);
    }
    Ok(Selector::from_iter(expressions))
}

/// Commas separate requirements, except inside `( )`.
fn split_requirements(text: &str) -> Result<Vec<&str>, &'static str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("a ')' without '('")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' without ')'");
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn requirement_of(text: &str) -> Result<Expression, &'static str> {
    let key = |k: &str| -> Result<String, &'static str> {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err("a requirement without a key")
        } else {
            Ok(k.to_owned())
        }
    };
    if let Some((k, v)) = text.split_once("!=") {
        return Ok(Expression::NotEqual(key(k)?, v.trim().to_owned()));
    }
    if let Some((k, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(Expression::Equal(key(k)?, v.trim().to_owned()));
    }
    for (word, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((k, values)) = text.split_once(word) {
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or("a set without parentheses")?;
            let values = values.split(',').map(|v| v.trim().to_owned()).collect();
            return Ok(if is_in {
                Expression::In(key(k)?, values)
            } else {
                Expression::NotIn(key(k)?, values)
            });
        }
    }
    match text.strip_prefix('!') {
        Some(k) => Ok(Expression::DoesNotExist(key(k)?)),
        None => Ok(Expression::Exists(key(text)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::SelectorExt;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn the_kubectl_forms() {
        let team = labels(&[("team", "a"), ("env", "prod")]);
        for (text, selects) in [
            ("team=a", true),
            ("team==a", true),
            ("team!=a", false),
            ("team", true),
            ("!team", false),
            ("team in (a, b)", true),
            ("team notin (a,b)", false),
            ("team=a,env in (prod)", true),
            ("team=a, env=dev", false),
        ] {
            assert_eq!(parse(text).unwrap().matches(&team), selects, "{text}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for text in ["=a", "team in a", "team in (a", "a)"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
