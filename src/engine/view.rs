//! Read-only views of the parts of an object the engine reads. They borrow
//! from the raw JSON and skip every other field, so nothing is copied and
//! nothing unknown is lost: the object itself is never re-serialised.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON string, borrowed when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JsonStr<'a>(pub Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = JsonStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ObjectView<'a> {
    #[serde(borrow, default)]
    pub metadata: Option<MetadataView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataView<'a> {
    #[serde(borrow, default)]
    pub annotations: Option<BTreeMap<JsonStr<'a>, JsonStr<'a>>>,
    /// Only for logs: read in the same pass, so no second scan is needed.
    #[serde(borrow, default)]
    pub generate_name: Option<JsonStr<'a>>,
}

impl MetadataView<'_> {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = self.annotations.as_ref()?;
        annotations
            .iter()
            .find(|(k, _)| &***k == key)
            .map(|(_, v)| &**v)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView<'a> {
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub ephemeral_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub image_pull_secrets: Option<Vec<SecretRefView<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerView<'a> {
    #[serde(borrow, default)]
    pub name: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub image: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub command: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    pub args: Option<Vec<JsonStr<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SecretRefView<'a> {
    #[serde(borrow, default)]
    pub name: Option<JsonStr<'a>>,
}

/// A member of a JSON object, found without parsing the other members.
#[derive(Debug)]
pub enum Member<'a> {
    /// Absent, or `null`.
    Missing,
    Present(&'a RawValue),
}

/// Why a member could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("expected an object, found {0}")]
    NotAnObject(&'static str),
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Finds `key` in the JSON object `raw`. `null` counts as missing.
pub fn pick<'a>(raw: &'a RawValue, key: &str) -> Result<Member<'a>, PickError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {}
        Some(b'n') => return Ok(Member::Missing),
        Some(b'[') => return Err(PickError::NotAnObject("an array")),
        Some(b'"') => return Err(PickError::NotAnObject("a string")),
        _ => return Err(PickError::NotAnObject("a scalar")),
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = deserializer.deserialize_map(PickVisitor { key })?;
    Ok(match found {
        Some(value) if value.get() != "null" => Member::Present(value),
        _ => Member::Missing,
    })
}

struct PickVisitor<'k> {
    key: &'k str,
}

impl<'de> Visitor<'de> for PickVisitor<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<JsonStr<'de>>()? {
            if &*key == self.key {
                if found.is_some() {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key {:?}",
                        self.key
                    )));
                }
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Parses a view; on failure, parses again with path tracking so that the
/// error names the field (`containers[2].image: invalid type ...`). The
/// fast path pays nothing for the good message.
pub fn parse_view<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    match serde_json::from_str(text) {
        Ok(view) => Ok(view),
        Err(plain) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
                // The path says where; a line and column in the object's
                // JSON (which a user may never have seen) add nothing.
                Err(e) if e.path().iter().next().is_some() => {
                    let message = e.inner().to_string();
                    let message = message.split(" at line ").next().unwrap_or(&message);
                    Err(format!("{}: {message}", e.path()))
                }
                _ => Err(plain.to_string()),
            }
        }
    }
}
