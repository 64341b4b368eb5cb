//! A credential for every build we move. A build that pushed to the
//! in-cluster registry needed none; once it pushes to, caches in or pulls
//! from the HTTPS registry, it needs the pull secret, in the place its
//! builder reads credentials from (the profile's [`CredentialSpec`]).
//!
//! The Secret is mounted as an optional volume, so a namespace without it
//! still starts the Pod and the push fails as it would have. A container
//! that brings a credential of its own is left as it is, with a line: ours
//! would shadow it or be shadowed by it, and its content cannot be read.

use serde_json::{json, Value};

use super::builders::Build;
use super::explain::{shown, ChangeKind};
use super::patch::PatchBuilder;
use super::rules::{
    CredentialSpec, Rules, CREDENTIAL_FILE, CREDENTIAL_VOLUME as VOLUME_NAME, SECRET_KEY,
};
use super::view::{ContainerView, PodSpecView};
use super::ContainerAt;

/// A container that runs a build.
pub(crate) struct Site<'c, 'r> {
    pub at: ContainerAt<'c>,
    pub container: &'c ContainerView<'c>,
    pub build: Build<'c, 'r>,
}

/// What one container gets.
enum Decision {
    /// Nothing: it has ours already, or it needs none.
    Nothing,
    /// Its own credential, or a form we cannot mount into safely: a line.
    LeftAlone(String),
    /// The mount, the variable, or both.
    Add {
        mount: bool,
        env: Option<(String, String)>,
    },
}

/// Mounts the pull secret into every build that reaches a rewrite target and
/// brings no credential of its own.
pub(crate) fn provide(
    sites: &[Site<'_, '_>],
    spec: &PodSpecView<'_>,
    rules: &Rules,
    patch: &mut PatchBuilder,
) {
    let Some(secret) = rules.image_pull_secrets.first() else {
        return;
    };
    let needs_one = |site: &&Site<'_, '_>| {
        site.build.reaches_target && site.build.profile.credentials.is_some()
    };
    // Most Pods run no such build: their volumes are never read.
    if !sites.iter().any(|site| needs_one(&site)) {
        return;
    }
    let volumes = match list(spec.volumes.map(|raw| raw.get())) {
        Some(volumes) => volumes,
        None => {
            patch.warn("volumes: not a list, so no build gets registry credentials".to_owned());
            return;
        }
    };
    let ours = volumes
        .iter()
        .find(|v| is_our_volume(v, secret))
        .and_then(|v| v["name"].as_str().map(str::to_owned));
    let mut volume = ours.clone();
    for site in sites.iter().filter(needs_one) {
        let Some(credentials) = site.build.profile.credentials.as_ref() else {
            continue;
        };
        let label = label(site);
        match decide(site, credentials, ours.as_deref(), rules) {
            Decision::Nothing => {}
            Decision::LeftAlone(line) => patch.warn(format!("{label}: {line}")),
            Decision::Add { mount, env } => {
                let name = volume.get_or_insert_with(|| free_name(&volumes)).clone();
                let mut added = Vec::new();
                if mount {
                    patch.append_to_container(
                        &site.at,
                        "volumeMounts",
                        site.container.volume_mounts.is_some(),
                        json!({"name": name, "mountPath": credentials.mount_path, "readOnly": true}),
                    );
                    added.push(format!("{secret} at {}", credentials.mount_path));
                }
                if let Some((variable, value)) = env {
                    patch.append_to_container(
                        &site.at,
                        "env",
                        site.container.env.is_some(),
                        json!({"name": variable, "value": value}),
                    );
                    added.push(format!("{variable}={value}"));
                }
                patch.explain(
                    ChangeKind::BuildCredential,
                    format!(
                        "{label}: added {} (its builder reads the registry credential there)",
                        shown(&added.join(" and "))
                    ),
                );
            }
        }
    }
    if ours.is_none() {
        if let Some(name) = volume {
            let secret_volume = json!({
                "name": name,
                "secret": {
                    "secretName": secret,
                    "optional": true,
                    "items": [{"key": SECRET_KEY, "path": CREDENTIAL_FILE}],
                },
            });
            patch.append_to_pod_spec("volumes", spec.volumes.is_some(), secret_volume);
        }
    }
}

/// `containers[build]`, with the builder's name for all but Kaniko, as the
/// builders' own lines are written.
fn label(site: &Site<'_, '_>) -> String {
    match site.build.profile.name.as_str() {
        "kaniko" => site.at.label(),
        name => format!("{} ({name})", site.at.label()),
    }
}

fn decide(
    site: &Site<'_, '_>,
    credentials: &CredentialSpec,
    ours: Option<&str>,
    rules: &Rules,
) -> Decision {
    let container = site.container;
    let (Some(env), Some(mounts)) = (
        list(container.env.map(|raw| raw.get())),
        list(container.volume_mounts.map(|raw| raw.get())),
    ) else {
        return Decision::LeftAlone(
            "env or volumeMounts is not a list; no registry credential added".into(),
        );
    };
    let our_env = credentials.env_value();
    let is_our_env = |e: &Value| {
        our_env.as_ref().is_some_and(|(name, value)| {
            e["name"].as_str() == Some(name) && e["value"].as_str() == Some(value.as_str())
        })
    };
    let is_our_mount = |m: &Value| {
        ours.is_some_and(|ours| m["name"].as_str() == Some(ours))
            && same_path(
                m["mountPath"].as_str().unwrap_or_default(),
                &credentials.mount_path,
            )
    };
    let targets = targets(rules);

    // A form we cannot mount into safely.
    let unsafe_env = env.iter().filter_map(|e| e["name"].as_str()).find(|name| {
        credentials
            .unsafe_env
            .iter()
            .any(|pattern| matches_name(pattern, name))
    });
    let unsafe_flag = site
        .build
        .flags
        .iter()
        .find(|f| credentials.unsafe_flags.iter().any(|u| u == *f));
    if let Some(why) = unsafe_env.or(unsafe_flag.copied()) {
        return Decision::LeftAlone(format!(
            "{why} is set, with which a mount could break the build; no registry credential added, \
             so give it one for {targets}"
        ));
    }

    // A credential of its own.
    let own_env = env
        .iter()
        .filter(|e| !is_our_env(e))
        .filter_map(|e| e["name"].as_str())
        .find(|name| {
            credentials
                .own_env
                .iter()
                .any(|pattern| matches_name(pattern, name))
        });
    let own_mount = mounts
        .iter()
        .filter(|m| !is_our_mount(m))
        .filter_map(|m| m["mountPath"].as_str())
        .find(|path| {
            credentials
                .own_paths
                .iter()
                .any(|file| at_or_above(path, file))
        });
    let own_flag = site
        .build
        .flags
        .iter()
        .find(|f| credentials.own_flags.iter().any(|o| o == *f));
    let own = match (own_env, own_mount, own_flag) {
        (Some(name), _, _) => Some(format!("env {name}")),
        (_, Some(path), _) => Some(format!("a volume at {}", shown(path))),
        (_, _, Some(flag)) => Some((*flag).to_owned()),
        _ => None,
    };
    if let Some(own) = own {
        return Decision::LeftAlone(format!(
            "brings its own registry credential ({own}), left as it is: it must hold {targets}"
        ));
    }

    // Something else where ours would go, or a variable we cannot see.
    let mount_taken = mounts.iter().any(|m| {
        !is_our_mount(m)
            && same_path(
                m["mountPath"].as_str().unwrap_or_default(),
                &credentials.mount_path,
            )
    });
    if mount_taken {
        return Decision::LeftAlone(format!(
            "a volume is mounted at {} already; no registry credential added, so give it one for {targets}",
            credentials.mount_path
        ));
    }
    if our_env.is_some() && container.env_from.is_some() {
        return Decision::LeftAlone(format!(
            "its envFrom may set the builder's credential variable, which cannot be seen here; \
             no registry credential added, so make sure it has one for {targets}"
        ));
    }

    let mount = !mounts.iter().any(is_our_mount);
    let has_our_env = env.iter().any(is_our_env);
    let env = our_env
        .clone()
        .filter(|_| !has_our_env)
        .map(|(name, value)| (name.to_owned(), value));
    match (mount, env) {
        (false, None) => Decision::Nothing,
        (mount, env) => Decision::Add { mount, env },
    }
}

/// The registries a credential must hold, for the lines.
fn targets(rules: &Rules) -> String {
    let mut targets: Vec<&str> = Vec::new();
    for rule in &rules.rewrites {
        if !targets.contains(&rule.to_domain.as_str()) {
            targets.push(&rule.to_domain);
        }
    }
    targets.join(", ")
}

/// The items of a JSON list; absent is empty, anything but a list `None`.
fn list(raw: Option<&str>) -> Option<Vec<Value>> {
    match raw.map(serde_json::from_str::<Value>) {
        None => Some(Vec::new()),
        Some(Ok(Value::Array(items))) => Some(items),
        Some(_) => None,
    }
}

fn is_our_volume(volume: &Value, secret: &str) -> bool {
    volume["name"]
        .as_str()
        .is_some_and(|n| n.starts_with(VOLUME_NAME))
        && volume["secret"]["secretName"].as_str() == Some(secret)
}

/// A volume name the Pod does not use yet.
fn free_name(volumes: &[Value]) -> String {
    let taken = |name: &str| volumes.iter().any(|v| v["name"].as_str() == Some(name));
    (0..)
        .map(|i| match i {
            0 => VOLUME_NAME.to_owned(),
            i => format!("{VOLUME_NAME}-{i}"),
        })
        .find(|name| !taken(name))
        .expect("some name is free")
}

/// A variable name against a pattern where `*` stands for any text.
fn matches_name(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn same_path(a: &str, b: &str) -> bool {
    components(a).eq(components(b))
}

/// Is a volume mounted at `mount_path` at or above `file` (where `*`
/// stands for one component)? Then it holds, or hides, that file.
fn at_or_above(mount_path: &str, file: &str) -> bool {
    let mut file = components(file);
    components(mount_path).all(|part| file.next().is_some_and(|f| f == "*" || f == part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_at_or_above() {
        assert!(at_or_above(
            "/kaniko/.docker",
            "/kaniko/.docker/config.json"
        ));
        assert!(at_or_above(
            "/kaniko/.docker/config.json",
            "/kaniko/.docker/config.json"
        ));
        assert!(at_or_above("/kaniko/", "/kaniko/.docker/config.json"));
        assert!(at_or_above(
            "/home/user/.docker",
            "/home/*/.docker/config.json"
        ));
        assert!(!at_or_above(
            "/kaniko/.docker2",
            "/kaniko/.docker/config.json"
        ));
        assert!(!at_or_above("/workspace", "/kaniko/.docker/config.json"));
        assert!(!at_or_above(
            "/kaniko/.docker/config.json/x",
            "/kaniko/.docker/config.json"
        ));
    }

    #[test]
    fn variable_patterns() {
        assert!(matches_name("DOCKER_CONFIG", "DOCKER_CONFIG"));
        assert!(!matches_name("DOCKER_CONFIG", "DOCKER_CONFIGS"));
        assert!(matches_name(
            "KANIKO_*_USER",
            "KANIKO_REGISTRY_K8S_LAB_DEV_USER"
        ));
        assert!(!matches_name("KANIKO_*_USER", "KANIKO_USER"));
        assert!(!matches_name("KANIKO_*_USER", "KANIKO_DIR"));
    }
}
