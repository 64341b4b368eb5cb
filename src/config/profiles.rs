//! The built-in builder profiles and CI wrappers: data, as a user would
//! write them under `builders:`. Supporting another image builder is one more
//! function here and its name in [`profiles`]; the engine needs no change
//! as long as the builder's arguments fit the roles a profile can give.

use serde::{Deserialize, Serialize};

use super::credentials::{buildah_credentials, buildkit_credentials, kaniko_credentials};
use crate::engine::rules::{CredentialSpec, FlagRoles};

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
    /// How the builder reads a registry credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialSpec>,
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
            // The osscontainertools community fork, published under both names.
            "ghcr.io/osscontainertools/kaniko",
            "docker.io/martizih/kaniko",
            // The community build of Chainguard's fork.
            "ghcr.io/kaniko-build/dist/chainguard-dev-kaniko/executor",
        ]),
        executables: strings(&["/kaniko/executor"]),
        subcommands: Vec::new(),
        image_arguments: Vec::new(),
        unknown: Unknown::new(),
        credentials: Some(kaniko_credentials()),
        flags: FlagRoles {
            value_flags: strings(&[
                "--annotation",
                "--bucket",
                "--build-arg",
                "--cache-dir",
                "--cache-ttl",
                "--compression",
                "--compression-level",
                "--context",
                "--context-sub-path",
                "--credential-helpers",
                "--custom-platform",
                "--customPlatform",
                "--digest-file",
                "--dockerfile",
                "--git",
                "--ignore-path",
                "--image-download-retry",
                "--image-format",
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
                "--secret",
                "--snapshot-mode",
                "--snapshotMode",
                "--tar-path",
                "--tarPath",
                "--target",
                "--verbosity",
                "-b",
                "-c",
                "-f",
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
            // The osscontainertools fork reads these as the flags
            // (cmd/executor/cmd/root.go, ValidateFlags).
            env_flags: [
                ("KANIKO_REGISTRY_MIRROR", "--registry-mirror"),
                ("KANIKO_REGISTRY_MAP", "--registry-map"),
            ]
            .into_iter()
            .map(|(name, flag)| (name.to_owned(), flag.to_owned()))
            .collect(),
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
        credentials: Some(buildkit_credentials()),
        flags: FlagRoles {
            value_flags: strings(&[
                "--addr",
                "--allow",
                "--debug-json-cache-metrics",
                "--frontend",
                "--local",
                "--log-format",
                "--metadata-file",
                "--oci-layout",
                "--opt",
                "--progress",
                "--ref-file",
                "--registry-auth-tlscontext",
                "--secret",
                "--source-policy-file",
                "--ssh",
                "--timeout",
                "--tlscacert",
                "--tlscert",
                "--tlsdir",
                "--tlskey",
                "--tlsservername",
                "--trace",
            ]),
            image_flags: Vec::new(),
            location_flags: Vec::new(),
            csv_flags: strings(&["--output", "-o", "--export-cache", "--import-cache"]),
            remove_flags: Vec::new(),
            remove_registry_flags: Vec::new(),
            tls_verify_flag: None,
            registry_map_flag: None,
            env_flags: Default::default(),
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
        credentials: Some(buildah_credentials()),
        flags: FlagRoles {
            value_flags: strings(&[
                "--add-host",
                "--annotation",
                "--arch",
                "--authfile",
                "--blob-cache",
                "--build-arg",
                "--build-arg-file",
                "--build-context",
                "--cache-ttl",
                "--cap-add",
                "--cap-drop",
                "--cdi-config-dir",
                "--cert-dir",
                "--cgroup-manager",
                "--cgroup-parent",
                "--cgroupns",
                "--cidfile",
                "--compression-format",
                "--compression-level",
                "--cpp-flag",
                "--cpu-period",
                "--cpu-profile",
                "--cpu-quota",
                "--cpu-shares",
                "--cpuset-cpus",
                "--cpuset-mems",
                "--creds",
                "--cw",
                "--decryption-key",
                "--default-mounts-file",
                "--device",
                "--digestfile",
                "--dns",
                "--dns-option",
                "--dns-search",
                "--encryption-key",
                "--env",
                "--file",
                "--format",
                "--group-add",
                "--hooks-dir",
                "--ignorefile",
                "--iidfile",
                "--iidfile-raw",
                "--imagestore",
                "--isolation",
                "--jobs",
                "--label",
                "--layer-label",
                "--logfile",
                "--loglevel",
                "--manifest",
                "--memory",
                "--memory-profile",
                "--memory-swap",
                "--metadata-file",
                "--mount",
                "--name",
                "--os",
                "--os-feature",
                "--os-version",
                "--output",
                "--platform",
                "--policy",
                "--registries-conf",
                "--registries-conf-dir",
                "--retry",
                "--retry-delay",
                "--root",
                "--runroot",
                "--runtime",
                "--runtime-flag",
                "--rusage-logfile",
                "--sbom",
                "--sbom-image-output",
                "--sbom-image-purl-output",
                "--sbom-merge-strategy",
                "--sbom-output",
                "--sbom-purl-output",
                "--sbom-scanner-command",
                "--sbom-scanner-image",
                "--secret",
                "--security-opt",
                "--shm-size",
                "--short-name-alias-conf",
                "--sign-by",
                "--signature-policy",
                "--source-date-epoch",
                "--source-policy-file",
                "--ssh",
                "--storage-driver",
                "--storage-opt",
                "--suffix",
                "--target",
                "--timestamp",
                "--ulimit",
                "--unsetannotation",
                "--unsetenv",
                "--unsetlabel",
                "--userns",
                "--userns-gid-map",
                "--userns-gid-map-group",
                "--userns-uid-map",
                "--userns-uid-map-user",
                "--variant",
                "--volume",
                "-c",
                "-f",
                "-m",
                "-o",
                "-v",
            ]),
            image_flags: strings(&["--tag", "-t", "--from", "--cache-from", "--cache-to"]),
            location_flags: Vec::new(),
            csv_flags: Vec::new(),
            remove_flags: Vec::new(),
            remove_registry_flags: Vec::new(),
            tls_verify_flag: Some("--tls-verify".into()),
            registry_map_flag: None,
            env_flags: Default::default(),
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
