//! How each built-in builder reads its registry credential (data), with
//! the builders' own sources that say so.

use super::profiles::strings;
use crate::engine::rules::{CredentialEnv, CredentialSpec, EnvValue};

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
pub(super) fn kaniko_credentials() -> CredentialSpec {
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
pub(super) fn buildkit_credentials() -> CredentialSpec {
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
pub(super) fn buildah_credentials() -> CredentialSpec {
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
