//! The one writer for commands that print objects: several YAML documents
//! separated by `---`, or JSON (one object as it is, several as a `List`).

use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum Format {
    Yaml,
    Json,
}

/// `objects` in `format`, ending with a newline.
pub(super) fn documents(objects: &[Value], format: Format) -> Result<String, super::CliError> {
    Ok(match format {
        Format::Yaml => {
            let mut out = String::new();
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml_ng::to_string(object)?);
            }
            out
        }
        Format::Json => {
            let value = match objects {
                [single] => single.clone(),
                many => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            serde_json::to_string_pretty(&value)? + "\n"
        }
    })
}
