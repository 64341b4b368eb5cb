//! Settings a builder reads from its environment instead of its flags
//! (the profile's `envFlags`): a variable's literal value is rewritten as
//! the flag it stands for would be. Values from `valueFrom` are not ours
//! to read.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::run::{Role, Run};
use super::values::Rewritten;
use crate::engine::explain::{shown, ChangeKind};
use crate::engine::view::JsonStr;

/// One `env` entry, as far as the builders read it.
#[derive(Deserialize)]
pub(crate) struct EnvVar<'a> {
    #[serde(borrow)]
    pub name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub value: Option<JsonStr<'a>>,
}

/// A container's `env`. The API server has checked the list's shape;
/// anything else is not a Pod's env, and reads as none.
pub(crate) fn vars<'a>(env: Option<&'a RawValue>) -> Vec<EnvVar<'a>> {
    env.and_then(|env| serde_json::from_str(env.get()).ok())
        .unwrap_or_default()
}

impl<'a> Run<'_, 'a, '_> {
    /// Rewrites every variable of `env` that stands for a registry flag.
    pub(super) fn rewrite_env(&mut self, env: &[EnvVar<'a>]) {
        if self.profile.flags.env_flags.is_empty() {
            return;
        }
        for (index, var) in env.iter().enumerate() {
            let (Some(name), Some(value)) = (&var.name, &var.value) else {
                continue;
            };
            let Some(flag) = self.profile.flags.env_flags.get(&*name.0) else {
                continue;
            };
            let role = self.role(flag);
            let new_value = match role {
                Role::RegistryMap => self.rewritten_env_map(value),
                Role::Image | Role::Location => match self.rewritten(role, &name.0, &value.0) {
                    Rewritten::To(new_value) => {
                        self.pushes_to_target |= role == Role::Image;
                        self.reaches_target = true;
                        Some(new_value)
                    }
                    Rewritten::Unchanged { on_target } => {
                        self.reaches_target |= on_target;
                        None
                    }
                },
                _ => None,
            };
            let Some(new_value) = new_value else {
                continue;
            };
            let message = format!(
                "{}.env[{index}]: {} {} -> {} (read as {flag})",
                self.at.label(),
                name.0,
                shown(&value.0),
                shown(&new_value)
            );
            self.patch.explain(ChangeKind::BuildArg, message);
            self.patch.replace_env_value(self.at, index, new_value);
            self.changed = true;
        }
    }

    /// A registry map from a borrowed or unescaped value.
    fn rewritten_env_map(&mut self, value: &JsonStr<'a>) -> Option<String> {
        match &value.0 {
            Cow::Borrowed(text) => self.rewritten_map(text),
            // An escaped value cannot lend its keys to `mapped`; none of a
            // registry's characters needs escaping, so it maps nothing.
            Cow::Owned(_) => None,
        }
    }
}
