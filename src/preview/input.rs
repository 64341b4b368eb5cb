//! What `-f` names, read as kubectl reads it: files, `-` for stdin, and
//! directories. An audit of `kubectl get -o json` output is streamed.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::{preview, read_documents, stream_json, Kinds, PreviewError, Previewed};
use crate::engine::Rules;

/// A source that could not be read or previewed, naming it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}")]
    Preview {
        source_name: String,
        #[source]
        source: PreviewError,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InputError {
    let what = what.into();
    move |source| InputError::Io { what, source }
}

/// Previews every source `-f` names, in order.
pub fn read_sources(
    given: &[String],
    recursive: bool,
    rules: &Rules,
    kinds: Kinds,
) -> Result<Vec<Previewed>, InputError> {
    let mut previewed = Vec::new();
    for source_name in sources(given, recursive)? {
        let (shown_name, reader): (String, Box<dyn Read>) = if source_name == "-" {
            ("stdin".to_owned(), Box::new(std::io::stdin().lock()))
        } else {
            let file = std::fs::File::open(&source_name).map_err(io_error(&source_name))?;
            (source_name, Box::new(file))
        };
        let mut reader = std::io::BufReader::new(reader);
        let in_source = |source| InputError::Preview {
            source_name: shown_name.clone(),
            source,
        };
        // An audit of `kubectl get -o json` reads a List item by item.
        if kinds == Kinds::Every && starts_with_brace(&mut reader).map_err(io_error(&shown_name))? {
            stream_json(reader, rules, kinds, |document| previewed.push(document))
                .map_err(in_source)?;
            continue;
        }
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(io_error(&shown_name))?;
        let documents = read_documents(&text).map_err(in_source)?;
        previewed.extend(preview(documents, rules, kinds).map_err(in_source)?);
    }
    Ok(previewed)
}

/// Whether the text starts, after white space, with `{` (JSON).
fn starts_with_brace(reader: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        let Some(position) = buffer.iter().position(|b| !b.is_ascii_whitespace()) else {
            if buffer.is_empty() {
                return Ok(false);
            }
            let length = buffer.len();
            reader.consume(length);
            continue;
        };
        let first = buffer[position];
        reader.consume(position);
        return Ok(first == b'{');
    }
}

/// A file, `-`, or a directory's `.yaml`, `.yml` and `.json` files in name
/// order (with `recursive`, its subdirectories' too).
fn sources(given: &[String], recursive: bool) -> Result<Vec<String>, InputError> {
    fn walk(dir: &Path, recursive: bool, found: &mut Vec<String>) -> Result<(), InputError> {
        let what = || dir.display().to_string();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_error(what()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_error(what()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                if recursive {
                    walk(&path, recursive, found)?;
                }
            } else if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                found.push(path.display().to_string());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for name in given {
        let path = Path::new(name);
        if name != "-" && path.is_dir() {
            walk(path, recursive, &mut found)?;
        } else {
            found.push(name.clone());
        }
    }
    Ok(found)
}
