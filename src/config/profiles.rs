//! The built-in builder profiles and CI wrappers: data, as a user would
//! write them under `builders:`. Supporting another image builder is one more
//! function here and its name in [`profiles`]; the engine needs no change
//! as long as the builder's arguments fit the roles a profile can give.

use serde::{Deserialize, Serialize};

use crate::engine::rules::FlagRoles;

/// How one image builder is recognised, and what its arguments mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuilderSpec {
    /// Shown in explanation lines: `containers[build].args (buildkit): ...`.
    pub name: String,
    /// Repositories (no tag) whose containers run this builder, at any tag or digest.
    #[serde(default)]
    pub images: Vec<String>,
    /// The executable, as `command[0]` or as the program a CI wrapper runs.
    /// A name without `/` also matches it in any directory.
    #[serde(default)]
    pub executables: Vec<String>,
    /// When not empty, the builder is only rewritten in these subcommands
    /// (the first argument that is not a flag).
    #[serde(default)]
    pub subcommands: Vec<String>,
    /// Subcommands whose other arguments are image references
    /// (`docker://` allowed); with several, the last is the remote one.
    #[serde(default)]
    pub image_arguments: Vec<String>,
    /// What each flag means, written beside the keys above.
    #[serde(flatten)]
    pub flags: FlagRoles,
    /// Keys that are none of the above, refused when the file is checked
    /// (serde cannot deny unknown keys beside a flattened struct).
    #[serde(flatten, skip_serializing)]
    pub unknown: Unknown,
}

/// Keys a section does not have.
pub type Unknown = std::collections::BTreeMap<String, serde_yaml_ng::Value>;

/// A CI engine's step wrapper, which runs the step's own program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WrapperSpec {
    pub name: String,
    /// `command[0]` of a wrapped step; a name without `/` matches in any directory.
    pub executables: Vec<String>,
    /// The wrapper's first argument, when it has one (`emissary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcommand: Option<String>,
    /// The flag that names the program (`-entrypoint`); without one, the
    /// program is the first argument after the wrapper's `--`. Either way the
    /// program's own arguments follow the wrapper's `--`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable_flag: Option<String>,
}

pub(crate) fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Every built-in profile, in the order they are tried.
pub fn profiles() -> Vec<BuilderSpec> {
    vec![kaniko(), buildkit(), buildah()]
}

/// Kaniko's executor: `/kaniko/executor --destination=... --cache-repo=...`.
/// Base images come from the Dockerfile, which the webhook cannot see, so
/// `--registry-map` sends their pulls to the HTTPS registry.
pub fn kaniko() -> BuilderSpec {
    BuilderSpec {
        name: "kaniko".into(),
        images: strings(&[
            // The original project, archived in 2025.
            "gcr.io/kaniko-project/executor",
            // Chainguard's maintained fork.
            "cgr.dev/chainguard/kaniko",
            "cgr.dev/chainguard/kaniko-fips",
            // The osscontainertools community fork.
            "docker.io/martizih/kaniko",
        ]),
        executables: strings(&["/kaniko/executor"]),
        subcommands: Vec::new(),
        image_arguments: Vec::new(),
        unknown: Unknown::new(),
        flags: FlagRoles {
            value_flags: strings(&[
                "--build-arg",
                "--cache-copy-layers",
                "--cache-dir",
                "--cache-ttl",
                "--compression",
                "--compression-level",
                "--context",
                "-c",
                "--context-sub-path",
                "--custom-platform",
                "--customPlatform",
                "--digest-file",
                "--dockerfile",
                "-f",
                "--git",
                "--ignore-path",
                "--image-download-retry",
                "--image-fs-extract-retry",
                "--image-name-tag-with-digest-file",
                "--image-name-with-digest-file",
                "--kaniko-dir",
                "--label",
                "--log-format",
                "--oci-layout-path",
                "--push-retry",
                "--registry-certificate",
                "--registry-client-cert",
                "--snapshot-mode",
                "--snapshotMode",
                "--tar-path",
                "--target",
                "--verbosity",
                "-v",
            ]),
            image_flags: strings(&["--destination", "-d", "--cache-repo"]),
            location_flags: strings(&["--registry-mirror"]),
            csv_flags: Vec::new(),
            remove_flags: strings(&[
                "--skip-tls-verify",
                "--skip-tls-verify-pull",
                "--insecure",
                "--insecure-pull",
            ]),
            remove_registry_flags: strings(&["--insecure-registry", "--skip-tls-verify-registry"]),
            tls_verify_flag: None,
            registry_map_flag: Some("--registry-map".into()),
        },
    }
}

/// BuildKit's client: `buildctl build --output type=image,name=...,push=true`,
/// also run daemonless through `buildctl-daemonless.sh`.
pub fn buildkit() -> BuilderSpec {
    BuilderSpec {
        name: "buildkit".into(),
        images: strings(&["docker.io/moby/buildkit"]),
        executables: strings(&["buildctl", "buildctl-daemonless.sh"]),
        subcommands: strings(&["build", "b"]),
        image_arguments: Vec::new(),
        unknown: Unknown::new(),
        flags: FlagRoles {
            value_flags: strings(&[
                // Global flags.
                "--addr",
                "--log-format",
                "--tlsservername",
                "--tlscacert",
                "--tlscert",
                "--tlskey",
                "--tlsdir",
                "--timeout",
                // `build`.
                "--progress",
                "--trace",
                "--local",
                "--oci-layout",
                "--frontend",
                "--opt",
                "--secret",
                "--allow",
                "--ssh",
                "--metadata-file",
                "--source-policy-file",
                "--ref-file",
                "--registry-auth-tlscontext",
            ]),
            image_flags: Vec::new(),
            location_flags: Vec::new(),
            csv_flags: strings(&["--output", "-o", "--export-cache", "--import-cache"]),
            remove_flags: Vec::new(),
            remove_registry_flags: Vec::new(),
            tls_verify_flag: None,
            registry_map_flag: None,
        },
    }
}

/// Buildah: `buildah bud -t ...`, `buildah push SRC [docker://]DEST`,
/// `buildah pull IMAGE`, `buildah from IMAGE`.
pub fn buildah() -> BuilderSpec {
    BuilderSpec {
        name: "buildah".into(),
        images: strings(&[
            "quay.io/buildah/stable",
            "quay.io/buildah/upstream",
            "quay.io/containers/buildah",
            "registry.redhat.io/rhel8/buildah",
            "registry.redhat.io/rhel9/buildah",
        ]),
        executables: strings(&["buildah"]),
        subcommands: strings(&[
            "bud",
            "build",
            "build-using-dockerfile",
            "push",
            "pull",
            "from",
        ]),
        image_arguments: strings(&["push", "pull", "from"]),
        unknown: Unknown::new(),
        flags: FlagRoles {
            value_flags: strings(&[
                // Global flags.
                "--cgroup-manager",
                "--log-level",
                "--registries-conf",
                "--registries-conf-dir",
                "--root",
                "--runroot",
                "--storage-driver",
                "--storage-opt",
                "--userns-uid-map",
                "--userns-gid-map",
                "--short-name-alias-conf",
                "--cpu-profile",
                "--memory-profile",
                // push, pull and from.
                "--authfile",
                "--cert-dir",
                "--creds",
                "--digestfile",
                "--encryption-key",
                "--decryption-key",
                "--format",
                "-f",
                "--compression-format",
                "--compression-level",
                "--retry",
                "--retry-delay",
                "--sign-by",
                "--signature-policy",
                "--encrypt-layer",
                "--arch",
                "--os",
                "--variant",
                "--platform",
                "--policy",
                "--name",
                // bud and build.
                "--file",
                "--build-arg",
                "--build-arg-file",
                "--target",
                "--label",
                "--annotation",
                "--isolation",
                "--jobs",
                "--network",
                "--secret",
                "--ssh",
                "--volume",
                "-v",
                "--iidfile",
                "--cache-ttl",
                "--logfile",
                "--manifest",
                "--output",
                "-o",
                "--timestamp",
                "--ulimit",
                "--userns",
                "--security-opt",
                "--shm-size",
                "--memory",
                "-m",
                "--env",
                "--device",
                "--dns",
                "--add-host",
                "--cap-add",
                "--cap-drop",
                "--cgroup-parent",
                "--cgroupns",
                "--cidfile",
                "--cpu-period",
                "--cpu-quota",
                "--cpu-shares",
                "--cpuset-cpus",
                "--cpuset-mems",
            ]),
            image_flags: strings(&["--tag", "-t", "--from", "--cache-from", "--cache-to"]),
            location_flags: Vec::new(),
            csv_flags: Vec::new(),
            remove_flags: Vec::new(),
            remove_registry_flags: Vec::new(),
            tls_verify_flag: Some("--tls-verify".into()),
            registry_map_flag: None,
        },
    }
}

/// Every built-in CI wrapper.
pub fn wrappers() -> Vec<WrapperSpec> {
    vec![
        // Tekton's step entrypoint: `-entrypoint PROGRAM -- ARGS...` in `args`
        // (tektoncd/pipeline, pkg/pod/entrypoint.go).
        WrapperSpec {
            name: "tekton".into(),
            executables: strings(&["/tekton/bin/entrypoint"]),
            subcommand: None,
            executable_flag: Some("-entrypoint".into()),
        },
        // Argo Workflows' emissary executor: `argoexec emissary [log flags]
        // -- PROGRAM ARGS...` in `command` (argo-workflows,
        // workflow/controller/workflowpod.go).
        WrapperSpec {
            name: "argo".into(),
            executables: strings(&["/var/run/argo/argoexec", "argoexec"]),
            subcommand: Some("emissary".into()),
            executable_flag: None,
        },
    ]
}
