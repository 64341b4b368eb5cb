//! JSON text written by hand on the admission path: strings, and the JSON
//! Patch the engine builds. serde_json escapes strings byte by byte through
//! a lookup table; nearly every string here needs no escaping at all, and
//! one check finds that out. A paired load run keeps this file
//! (docs/performance.md). The output is the text serde_json writes, byte
//! for byte (tested below).

use std::fmt::{self, Write};

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

/// Writes `value` as a quoted, escaped JSON string.
pub fn write_str(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what is written through it, for the inside of a JSON string.
pub struct Escaped<'a, W: ?Sized>(pub &'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // A check without an early exit compiles to vector instructions,
        // and nearly every text needs no escaping.
        let needs_escaping = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        if !text.bytes().fold(false, |any, b| any | needs_escaping(b)) {
            return self.0.write_str(text);
        }
        let mut plain_from = 0;
        for (i, byte) in text.bytes().enumerate() {
            let short = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain_from..i])?;
            if short.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(short)?;
            }
            plain_from = i + 1;
        }
        self.0.write_str(&text[plain_from..])
    }
}

/// Writes a JSON Patch as serde_json would.
pub fn write_patch(out: &mut String, patch: &Patch) {
    out.push('[');
    for (i, operation) in patch.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_operation(out, operation);
    }
    out.push(']');
}

fn write_operation(out: &mut String, operation: &PatchOperation) {
    let (op, path, value) = match operation {
        PatchOperation::Add(add) => ("add", &add.path, Some(&add.value)),
        PatchOperation::Replace(replace) => ("replace", &replace.path, Some(&replace.value)),
        PatchOperation::Remove(remove) => ("remove", &remove.path, None),
        // The engine never builds these.
        other => {
            out.push_str(&serde_json::to_string(other).expect("a patch operation serialises"));
            return;
        }
    };
    out.push_str("{\"op\":\"");
    out.push_str(op);
    out.push_str("\",\"path\":");
    push_str(out, path.as_str());
    if let Some(value) = value {
        out.push_str(",\"value\":");
        write_value(out, value);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => push_str(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, key);
                out.push(':');
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

/// `write_str` into a `String`, which cannot fail.
pub fn push_str(out: &mut String, value: &str) {
    let _ = write_str(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_string(value: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, value).expect("a String takes every write");
        out
    }

    fn serde_text(value: &impl serde::Serialize) -> String {
        serde_json::to_string(value).expect("serialises")
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            json_string("\n\r\t\u{8}\u{c}\u{1}\u{1f}"),
            r#""\n\r\t\b\f\u0001\u001f""#
        );
        assert_eq!(json_string("é ✓ \u{7f}"), "\"é ✓ \u{7f}\"");
    }

    /// Text rich in the characters that need escaping.
    fn any_text() -> impl Strategy<Value = String> {
        let character = prop_oneof![
            (0u8..0x20).prop_map(char::from),
            Just('"'),
            Just('\\'),
            (0x20u8..0x7f).prop_map(char::from),
            any::<char>(),
        ];
        prop::collection::vec(character, 0..24).prop_map(String::from_iter)
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((any_text(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn any_operation() -> impl Strategy<Value = PatchOperation> {
        let pointer =
            || prop::collection::vec(any_text(), 0..4).prop_map(jsonptr::PointerBuf::from_tokens);
        (0..5u8, pointer(), pointer(), any_value()).prop_map(|(op, path, from, value)| {
            use json_patch::*;
            match op {
                0 => PatchOperation::Add(AddOperation { path, value }),
                1 => PatchOperation::Replace(ReplaceOperation { path, value }),
                2 => PatchOperation::Remove(RemoveOperation { path }),
                3 => PatchOperation::Move(MoveOperation { from, path }),
                _ => PatchOperation::Test(TestOperation { path, value }),
            }
        })
    }

    proptest! {
        #[test]
        fn strings_match_serde_json(value in any_text()) {
            prop_assert_eq!(json_string(&value), serde_text(&value));
        }

        #[test]
        fn patches_match_serde_json(operations in prop::collection::vec(any_operation(), 0..5)) {
            let patch = Patch(operations);
            let mut out = String::new();
            write_patch(&mut out, &patch);
            prop_assert_eq!(out, serde_text(&patch));
        }
    }
}
