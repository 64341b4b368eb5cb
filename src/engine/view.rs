//! Read-only views of the parts of an object the engine reads. They borrow
//! from the raw JSON and skip every other field, so nothing is copied and
//! nothing unknown is lost: the object itself is never re-serialised.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

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
#[serde(rename_all = "camelCase", expecting = "an object")]
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
#[serde(rename_all = "camelCase", expecting = "an object")]
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
#[serde(expecting = "a container object")]
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
#[serde(expecting = "an object")]
pub struct SecretRefView<'a> {
    #[serde(borrow, default)]
    pub name: Option<JsonStr<'a>>,
}

/// What the engine reads of an object, found in one pass.
#[derive(Debug, Default)]
pub struct ObjectParts<'a> {
    pub metadata: Option<MetadataView<'a>>,
    /// `None` when the pod spec, or any object on the way to it, is absent or null.
    pub pod_spec: Option<PodSpecView<'a>>,
}

/// Reads `metadata` and the pod spec at `pod_spec_path` in a single pass
/// over the object, skipping every other member once.
#[derive(Clone, Copy)]
pub struct ObjectSeed<'p> {
    pub pod_spec_path: &'p [&'p str],
}

impl<'de, 'p> DeserializeSeed<'de> for ObjectSeed<'p> {
    type Value = ObjectParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'p> Visitor<'de> for ObjectSeed<'p> {
    type Value = ObjectParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = self.pod_spec_path.split_first().unwrap_or((&"", &[]));
        let mut parts = ObjectParts::default();
        let (mut seen_metadata, mut seen_path) = (false, false);
        while let Some(key) = map.next_key::<JsonStr<'de>>()? {
            if &*key == "metadata" {
                check_once(&mut seen_metadata, "metadata")?;
                parts.metadata = map.next_value()?;
            } else if &*key == *first {
                check_once(&mut seen_path, first)?;
                parts.pod_spec = map.next_value_seed(PathSeed { rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(parts)
    }
}

/// Follows the rest of the path to the pod spec; null or absent on the way
/// means there is none.
struct PathSeed<'p> {
    rest: &'p [&'p str],
}

impl<'de, 'p> DeserializeSeed<'de> for PathSeed<'p> {
    type Value = Option<PodSpecView<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.rest {
            [] => Option::<PodSpecView>::deserialize(deserializer),
            _ => deserializer.deserialize_option(self),
        }
    }
}

impl<'de, 'p> Visitor<'de> for PathSeed<'p> {
    type Value = Option<PodSpecView<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = self.rest.split_first().unwrap_or((&"", &[]));
        let mut found = None;
        let mut seen = false;
        while let Some(key) = map.next_key::<JsonStr<'de>>()? {
            if &*key == *first {
                check_once(&mut seen, first)?;
                found = map.next_value_seed(PathSeed { rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A key the engine reads must not appear twice: which one would count is
/// not obvious, so such an object is refused.
fn check_once<E: de::Error>(seen: &mut bool, key: &str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::custom(format_args!("duplicate field `{key}`")));
    }
    Ok(())
}

/// Reads an object's parts in one pass. On failure, reads again with path
/// tracking, so that the error names the field
/// (`spec.containers[2].image: invalid type ...`); the fast path pays
/// nothing for the good message.
pub fn read_object<'a>(
    text: &'a str,
    pod_spec_path: &[&str],
) -> Result<ObjectParts<'a>, (String, String)> {
    let seed = ObjectSeed { pod_spec_path };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    match seed.deserialize(&mut deserializer) {
        Ok(parts) => Ok(parts),
        Err(plain) => Err(with_path(text, seed, plain)),
    }
}

/// Parses with a seed; on failure, names the field as `read_object` does.
pub fn parse_seed<'a, S: DeserializeSeed<'a> + Copy>(
    text: &'a str,
    seed: S,
) -> Result<S::Value, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = seed.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    parsed.map_err(|plain| {
        let (field, reason) = with_path(text, seed, plain);
        if field.is_empty() {
            reason
        } else {
            format!("{field}: {reason}")
        }
    })
}

/// Re-runs a failed parse with path tracking: (field path, reason). The
/// path says where; a line and column in JSON the user may never have seen
/// add nothing, so they are dropped when there is a path.
fn with_path<'a, S: DeserializeSeed<'a>>(
    text: &'a str,
    seed: S,
    plain: serde_json::Error,
) -> (String, String) {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let result = seed.deserialize(serde_path_to_error::Deserializer::new(
        &mut deserializer,
        &mut track,
    ));
    let path = track.path().to_string();
    // serde quotes the offending value in full; a warning or a 400 body must
    // stay short whatever the input.
    let short = |message: &str| super::patch::shown(message).into_owned();
    match result {
        Err(e) if path != "." && !path.is_empty() => {
            let message = e.to_string();
            let reason = message.split(" at line ").next().unwrap_or(&message);
            (path, short(reason))
        }
        _ => (String::new(), short(&plain.to_string())),
    }
}
