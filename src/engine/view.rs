//! Read-only views of the parts of an object the engine reads. They borrow
//! from the raw JSON and skip every other field, so nothing is copied and
//! nothing unknown is lost: the object itself is never re-serialised.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
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
        struct StrVisitor<'a>(PhantomData<&'a ()>);
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
        deserializer.deserialize_str(StrVisitor(PhantomData))
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

/// What the engine reads of an object, kind or no kind: `metadata`, and the
/// `spec` on the way to the pod spec. A Pod's `spec` is the pod spec; a
/// Job's or a Deployment's holds it in `template`, and a CronJob's one level
/// further, in `jobTemplate`. So the object is read in the same pass as the
/// review around it, before its kind is looked at.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object")]
pub struct ObjectView<'a> {
    #[serde(borrow, default, deserialize_with = "object")]
    pub metadata: Option<MetadataView<'a>>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub spec: Option<PodSpecView<'a>>,
}

/// A pod spec, or a `spec` that holds one further down.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an object")]
pub struct PodSpecView<'a> {
    #[serde(borrow, default, deserialize_with = "objects")]
    pub containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default, deserialize_with = "objects")]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default, deserialize_with = "objects")]
    pub ephemeral_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default, deserialize_with = "objects")]
    pub image_pull_secrets: Option<Vec<SecretRefView<'a>>>,
    /// Kept as text, and read only when a builder gets a credential.
    #[serde(borrow, default)]
    pub volumes: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "object")]
    template: Option<Box<TemplateView<'a>>>,
    #[serde(borrow, default, deserialize_with = "object")]
    job_template: Option<Box<TemplateView<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object")]
struct TemplateView<'a> {
    #[serde(borrow, default, deserialize_with = "object")]
    spec: Option<PodSpecView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a container object")]
pub struct ContainerView<'a> {
    #[serde(borrow, default)]
    pub name: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub image: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub command: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    pub args: Option<Vec<JsonStr<'a>>>,
    /// Kept as text, and read only for a builder that gets a credential.
    #[serde(borrow, default)]
    pub env: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub env_from: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub volume_mounts: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object")]
pub struct SecretRefView<'a> {
    #[serde(borrow, default)]
    pub name: Option<JsonStr<'a>>,
}

/// A struct read from a JSON object only. Derived structs also take an
/// array, member by member in order; an object sent that way would be read
/// as containers and images that are not there.
pub struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(MapVisitor(PhantomData))
            .map(MapOnly)
    }
}

/// `null`, absent or an object.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<MapOnly<T>>::deserialize(deserializer).map(|found| found.map(|object| object.0))
}

/// `null`, absent or a list of objects.
fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Option::<Vec<MapOnly<T>>>::deserialize(deserializer)
        .map(|found| found.map(|list| list.into_iter().map(|object| object.0).collect()))
}

/// What the engine reads of an object of a known kind.
#[derive(Debug, Default)]
pub struct ObjectParts<'a> {
    pub metadata: Option<MetadataView<'a>>,
    /// `None` when the pod spec, or any object on the way to it, is absent or null.
    pub pod_spec: Option<PodSpecView<'a>>,
}

impl<'a> ObjectView<'a> {
    /// Follows `pod_spec_path` (`spec`, then `template`/`jobTemplate` and
    /// `spec` pairs) to the pod spec.
    pub fn into_parts(self, pod_spec_path: &[&str]) -> ObjectParts<'a> {
        let mut spec = self.spec;
        let mut rest = pod_spec_path.get(1..).unwrap_or_default();
        while let [holder, _spec, tail @ ..] = rest {
            spec = spec
                .and_then(|s| match *holder {
                    "template" => s.template,
                    "jobTemplate" => s.job_template,
                    _ => None,
                })
                .and_then(|template| template.spec);
            rest = tail;
        }
        ObjectParts {
            metadata: self.metadata,
            pod_spec: spec,
        }
    }
}

/// Reads an object's parts in one pass, naming the field on failure.
pub fn read_object<'a>(
    text: &'a str,
    pod_spec_path: &[&str],
) -> Result<ObjectParts<'a>, FieldError> {
    parse::<MapOnly<ObjectView>>(text).map(|view| view.0.into_parts(pod_spec_path))
}

/// Where a JSON text does not have the expected shape, and serde's reason.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct FieldError {
    /// `spec.containers[2].image`; empty when the text itself is at fault.
    pub field: String,
    /// serde's error, shown in the message rather than as a cause.
    pub error: serde_json::Error,
    /// The field came from tracking the path, so the line and column add nothing.
    located: bool,
}

impl FieldError {
    /// The same error, said of a part of something larger: `oldObject`, or
    /// `object` when the text as a whole is at fault.
    pub fn within(mut self, part: &str) -> Self {
        self.field = match self.field.is_empty() {
            true => part.to_owned(),
            false if part == "object" => self.field,
            false => format!("{part}.{}", self.field),
        };
        self
    }

    /// serde's message, without a line and column in JSON the user may never
    /// have seen when the field says where, and short whatever the input:
    /// serde quotes the offending value in full.
    fn describe(&self) -> String {
        let message = self.error.to_string();
        let reason = match self.located {
            true => message.split(" at line ").next().unwrap_or(&message),
            false => &message,
        };
        let reason = super::explain::shown(reason);
        match self.field.is_empty() {
            true => reason.into_owned(),
            false => format!("{}: {reason}", self.field),
        }
    }
}

/// Parses the whole text as `T`. On failure, parses again with path
/// tracking, so that the error names the field; the fast path pays nothing
/// for the good message.
pub fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, FieldError> {
    let plain = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(plain) => plain,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let tracked = T::deserialize(serde_path_to_error::Deserializer::new(
        &mut deserializer,
        &mut track,
    ));
    let path = track.path().to_string();
    match tracked {
        Err(error) if path != "." && !path.is_empty() => Err(FieldError {
            field: path,
            error,
            located: true,
        }),
        _ => Err(FieldError {
            field: String::new(),
            error: plain,
            located: false,
        }),
    }
}
