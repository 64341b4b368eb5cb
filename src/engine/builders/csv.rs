//! The CSV that BuildKit takes in `--output`, `--export-cache` and
//! `--import-cache` (`type=image,"name=a,b",push=true`). buildctl reads it
//! as one record of Go's encoding/csv (through tonistiigi/go-csvvalue, in
//! moby/buildkit cmd/buildctl/build/output.go): comma-separated fields, a
//! field quoted with `"` when it holds a comma, `""` for a quote inside.
//! Each field is `key=value`, the key case-insensitive.
//!
//! Written here rather than through the `csv` crate: rewriting a value must
//! keep every other field byte for byte, quotes included, which needs where
//! each field stands in the text, and the crate gives only the values.

use std::borrow::Cow;

/// One field: where it stands in the text, and its value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub raw: &'a str,
    pub value: Cow<'a, str>,
    pub quoted: bool,
}

/// The text is not one CSV record as Go's reader takes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("a quote inside an unquoted field")]
    BareQuote,
    #[error("a quoted field is not closed")]
    Unclosed,
    #[error("text after a closing quote")]
    AfterQuote,
    #[error("a line break")]
    LineBreak,
}

pub fn fields(text: &str) -> Result<Vec<Field<'_>>, CsvError> {
    if text.contains(['\n', '\r']) {
        return Err(CsvError::LineBreak);
    }
    let mut fields = Vec::new();
    let mut rest = text;
    loop {
        let (field, after) = if let Some(inner) = rest.strip_prefix('"') {
            let (value, length) = quoted(inner)?;
            let after = &inner[length..];
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(CsvError::AfterQuote);
            }
            let raw = &rest[..length + 1];
            (
                Field {
                    raw,
                    value,
                    quoted: true,
                },
                after,
            )
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let raw = &rest[..end];
            if raw.contains('"') {
                return Err(CsvError::BareQuote);
            }
            (
                Field {
                    raw,
                    value: Cow::Borrowed(raw),
                    quoted: false,
                },
                &rest[end..],
            )
        };
        fields.push(field);
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None => return Ok(fields),
        }
    }
}

/// The value of a quoted field whose opening quote is gone, and the length
/// of the text it took, closing quote included.
fn quoted(inner: &str) -> Result<(Cow<'_, str>, usize), CsvError> {
    let mut value: Option<String> = None;
    let mut from = 0;
    let mut search = 0;
    loop {
        let quote = inner[search..].find('"').ok_or(CsvError::Unclosed)? + search;
        if inner[quote + 1..].starts_with('"') {
            let value = value.get_or_insert_with(String::new);
            value.push_str(&inner[from..=quote]);
            from = quote + 2;
            search = quote + 2;
            continue;
        }
        let value = match value {
            None => Cow::Borrowed(&inner[..quote]),
            Some(mut value) => {
                value.push_str(&inner[from..quote]);
                Cow::Owned(value)
            }
        };
        return Ok((value, quote + 1));
    }
}

/// A field's new text, quoted as the original was (or when it must be).
pub fn encode(value: &str, quoted: bool) -> String {
    if quoted || value.contains([',', '"']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn values(text: &str) -> Result<Vec<String>, CsvError> {
        fields(text).map(|f| f.into_iter().map(|f| f.value.into_owned()).collect())
    }

    #[rstest]
    #[case::plain("type=image,name=a,push=true", &["type=image", "name=a", "push=true"])]
    #[case::quoted_commas("type=image,\"name=a,b\"", &["type=image", "name=a,b"])]
    #[case::doubled_quote("\"a\"\"b\",c", &["a\"b", "c"])]
    #[case::empty_fields(",a,", &["", "a", ""])]
    #[case::empty_text("", &[""])]
    fn reads_as_go_does(#[case] text: &str, #[case] expected: &[&str]) {
        assert_eq!(values(text).unwrap(), expected);
    }

    #[rstest]
    #[case::bare_quote("na\"me=a", CsvError::BareQuote)]
    #[case::unclosed("\"name=a", CsvError::Unclosed)]
    #[case::after_quote("\"name=a\"x,b", CsvError::AfterQuote)]
    #[case::line_break("a\nb", CsvError::LineBreak)]
    fn refuses_what_go_refuses(#[case] text: &str, #[case] expected: CsvError) {
        assert_eq!(values(text), Err(expected));
    }

    #[test]
    fn raw_text_is_kept() {
        let text = "type=image,\"name=a,b\",push=true";
        let raws: Vec<&str> = fields(text).unwrap().iter().map(|f| f.raw).collect();
        assert_eq!(raws.join(","), text);
    }
}
