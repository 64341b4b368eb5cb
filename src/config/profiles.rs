//! The built-in builder profiles and CI wrappers: data, as a user would
//! write them under `builders:`. Supporting another image builder is one more
//! function here and its name in [`profiles`]; the engine needs no change
//! as long as the builder's arguments fit the roles a profile can give.

use serde::{Deserialize, Serialize};

use crate::engine::rules::{CredentialEnv, CredentialSpec, EnvValue, FlagRoles};

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
        credentials: Some(buildkit_credentials()),
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
        credentials: Some(buildah_credentials()),
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

/// Where the Secret goes for builders whose image has no place of its own
/// for it: a directory of its own, so it shadows nothing in the image.
const MOUNT_PATH: &str = "/var/run/secrets/registry-rewriter";

/// Variables through which any of the builders below reads a credential.
const CREDENTIAL_ENV: &[&str] = &["DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "DOCKER_AUTH_CONFIG"];

/// Kaniko reads `$DOCKER_CONFIG/config.json`, and its image sets
/// `DOCKER_CONFIG=/kaniko/.docker/` (an empty directory in the image); the
/// executor falls back to `/kaniko/.docker/config.json` too
/// (GoogleContainerTools/kaniko deploy/Dockerfile, pkg/util/gcr_util.go).
/// So the Secret goes there, with no variable. `--kaniko-dir` (or
/// `KANIKO_DIR`) copies `/kaniko` away and removes it, which a read-only
/// mount inside it would make fail (cmd/executor/cmd/root.go,
/// checkKanikoDir). The osscontainertools fork also reads
/// `DOCKER_AUTH_CONFIG` and `KANIKO_<REGISTRY>_USER`/`_PASSWORD`
/// (pkg/creds).
fn kaniko_credentials() -> CredentialSpec {
    let mut own_env = strings(CREDENTIAL_ENV);
    own_env.push("KANIKO_*_USER".into());
    CredentialSpec {
        mount_path: "/kaniko/.docker".into(),
        env: None,
        own_env,
        own_paths: strings(&["/kaniko/.docker/config.json"]),
        own_flags: Vec::new(),
        unsafe_env: strings(&["KANIKO_DIR"]),
        unsafe_flags: strings(&["--kaniko-dir"]),
    }
}

/// buildctl reads `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (docker/cli's config.Dir, which buildctl's
/// `authprovider` loads); moby/buildkit's images run as root or, rootless,
/// as `user` with `HOME=/home/user`.
fn buildkit_credentials() -> CredentialSpec {
    CredentialSpec {
        mount_path: MOUNT_PATH.into(),
        env: Some(CredentialEnv {
            name: "DOCKER_CONFIG".into(),
            value: EnvValue::Directory,
        }),
        own_env: strings(CREDENTIAL_ENV),
        own_paths: strings(&["/root/.docker/config.json", "/home/*/.docker/config.json"]),
        own_flags: Vec::new(),
        unsafe_env: Vec::new(),
        unsafe_flags: Vec::new(),
    }
}

/// Buildah reads `--authfile` (default `REGISTRY_AUTH_FILE`), else
/// `${XDG_RUNTIME_DIR}/containers/auth.json` or `/run/containers/<uid>/auth.json`,
/// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`,
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, and
/// `~/.dockercfg` (containers/image pkg/docker/config/config.go,
/// getAuthFilePaths); `--creds` gives one directly. `REGISTRY_AUTH_FILE`
/// points it at the mounted file alone.
fn buildah_credentials() -> CredentialSpec {
    let mut own_env = strings(CREDENTIAL_ENV);
    own_env.extend(strings(&["XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"]));
    CredentialSpec {
        mount_path: MOUNT_PATH.into(),
        env: Some(CredentialEnv {
            name: "REGISTRY_AUTH_FILE".into(),
            value: EnvValue::File,
        }),
        own_env,
        own_paths: strings(&[
            "/run/containers/*/auth.json",
            "/run/user/*/containers/auth.json",
            "/root/.config/containers/auth.json",
            "/home/*/.config/containers/auth.json",
            "/root/.docker/config.json",
            "/home/*/.docker/config.json",
            "/root/.dockercfg",
            "/home/*/.dockercfg",
        ]),
        own_flags: strings(&["--authfile", "--creds"]),
        unsafe_env: Vec::new(),
        unsafe_flags: Vec::new(),
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
