//! Every built-in profile's flag tables against the flags each builder
//! defines, so that a flag that takes no value is never read as taking the
//! next argument (and the reverse). The tables below are the builders' own
//! flag definitions, from their sources:
//!
//! - Kaniko: GoogleContainerTools/kaniko `cmd/executor/cmd/root.go` at
//!   236ba5690eda, with the osscontainertools fork's `cmd/executor/cmd/root.go`
//!   and `push.go` at 6bcc934434e3 (pflag `BoolVar*` against the rest);
//! - buildctl: moby/buildkit `cmd/buildctl/main.go` (global) and
//!   `cmd/buildctl/build.go` at 73ed6825c4b7 (urfave/cli `BoolFlag` against
//!   the rest, aliases included);
//! - Buildah: containers/buildah `cmd/buildah/{main,build,push,pull,from}.go`
//!   and `pkg/cli/common.go` at 5b1b18eebdc2. `--pull` has a `NoOptDefVal`
//!   there: it takes a value only as `--pull=VALUE`, so it counts as a flag
//!   without one.

use registry_rewriter::config::Config;
use registry_rewriter::engine::rules::BuilderProfile;

const KANIKO_BOOLS: &[&str] = &[
    "--cache",
    "--cache-copy-layers",
    "--cache-run-layers",
    "--cleanup",
    "--compressed-caching",
    "--dryrun",
    "--force",
    "--force-build-metadata",
    "--ignore-var-run",
    "--insecure",
    "--insecure-pull",
    "--log-timestamp",
    "--materialize",
    "--no-push",
    "--no-push-cache",
    "--pre-cleanup",
    "--preserve-context",
    "--push-ignore-immutable-tag-errors",
    "--reproducible",
    "--single-snapshot",
    "--skip-default-registry-fallback",
    "--skip-push-permission-check",
    "--skip-tls-verify",
    "--skip-tls-verify-pull",
    "--skip-unused-stages",
    "--use-new-run",
    "--whitelist-var-run",
];
const KANIKO_VALUES: &[&str] = &[
    "--annotation",
    "--bucket",
    "--build-arg",
    "--cache-dir",
    "--cache-repo",
    "--cache-ttl",
    "--compression",
    "--compression-level",
    "--context",
    "--context-sub-path",
    "--credential-helpers",
    "--custom-platform",
    "--customPlatform",
    "--destination",
    "--digest-file",
    "--dockerfile",
    "--git",
    "--ignore-path",
    "--image-download-retry",
    "--image-format",
    "--image-fs-extract-retry",
    "--image-name-tag-with-digest-file",
    "--image-name-with-digest-file",
    "--insecure-registry",
    "--kaniko-dir",
    "--label",
    "--log-format",
    "--oci-layout-path",
    "--push-retry",
    "--registry-certificate",
    "--registry-client-cert",
    "--registry-map",
    "--registry-mirror",
    "--secret",
    "--skip-tls-verify-registry",
    "--snapshot-mode",
    "--snapshotMode",
    "--tar-path",
    "--tarPath",
    "--target",
    "--verbosity",
    "-b",
    "-c",
    "-d",
    "-f",
    "-v",
];
const BUILDCTL_BOOLS: &[&str] = &["--debug", "--no-cache", "--proxy-network", "--wait"];
const BUILDCTL_VALUES: &[&str] = &[
    "--addr",
    "--allow",
    "--debug-json-cache-metrics",
    "--export-cache",
    "--frontend",
    "--import-cache",
    "--local",
    "--log-format",
    "--metadata-file",
    "--oci-layout",
    "--opt",
    "--output",
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
    "-o",
];
const BUILDAH_BOOLS: &[&str] = &[
    "--all",
    "--all-platforms",
    "--all-tags",
    "--compat-volumes",
    "--compress",
    "--created-annotation",
    "--debug",
    "--disable-compression",
    "--disable-content-trust",
    "--force-compression",
    "--force-rm",
    "--http-proxy",
    "--identity-label",
    "--inherit-annotations",
    "--inherit-labels",
    "--layers",
    "--log-rusage",
    "--logsplit",
    "--no-cache",
    "--no-hostname",
    "--no-hosts",
    "--omit-history",
    "--pull",
    "--pull-always",
    "--pull-never",
    "--quiet",
    "--remove-signatures",
    "--rewrite-timestamp",
    "--rm",
    "--save-stages",
    "--skip-unused-stages",
    "--squash",
    "--stage-labels",
    "--stdin",
    "--tls-verify",
    "--transient-store",
    "-a",
    "-q",
];
const BUILDAH_VALUES: &[&str] = &[
    "--add-host",
    "--annotation",
    "--arch",
    "--authfile",
    "--blob-cache",
    "--build-arg",
    "--build-arg-file",
    "--build-context",
    "--cache-from",
    "--cache-to",
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
    "--from",
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
    "--tag",
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
    "-t",
    "-v",
];

/// Flags a profile reads as taking the next argument as their value.
fn takes_value(profile: &BuilderProfile) -> Vec<&str> {
    let f = &profile.flags;
    [
        &f.value_flags,
        &f.image_flags,
        &f.location_flags,
        &f.csv_flags,
        &f.remove_registry_flags,
    ]
    .into_iter()
    .flatten()
    .chain(&f.registry_map_flag)
    .map(String::as_str)
    .collect()
}

/// Flags a profile reads as standing alone.
fn stands_alone(profile: &BuilderProfile) -> Vec<&str> {
    let f = &profile.flags;
    f.remove_flags
        .iter()
        .chain(&f.tls_verify_flag)
        .map(String::as_str)
        .collect()
}

fn check(name: &str, bools: &[&str], values: &[&str]) {
    let rules = Config::default().into_rules();
    let profile = rules
        .builders
        .iter()
        .find(|p| p.name == name)
        .expect("a built-in profile");
    let valued = takes_value(profile);
    for flag in &valued {
        assert!(
            values.contains(flag),
            "{name}: {flag} is read as taking a value, but the builder defines it {}",
            if bools.contains(flag) {
                "as a bool"
            } else {
                "nowhere"
            }
        );
    }
    for flag in values {
        assert!(
            valued.contains(flag),
            "{name}: {flag} takes a value, but the profile would read its value as an argument"
        );
    }
    for flag in stands_alone(profile) {
        assert!(
            bools.contains(&flag),
            "{name}: {flag} is read as standing alone, but the builder defines it {}",
            if values.contains(&flag) {
                "with a value"
            } else {
                "nowhere"
            }
        );
    }
}

#[test]
fn kaniko_reads_flags_as_kaniko_defines_them() {
    check("kaniko", KANIKO_BOOLS, KANIKO_VALUES);
}

#[test]
fn buildkit_reads_flags_as_buildctl_defines_them() {
    check("buildkit", BUILDCTL_BOOLS, BUILDCTL_VALUES);
}

#[test]
fn buildah_reads_flags_as_buildah_defines_them() {
    check("buildah", BUILDAH_BOOLS, BUILDAH_VALUES);
}

/// The miss the check was made for: `--cache-copy-layers` takes no value,
/// so the `--cache-repo` after it is rewritten.
#[test]
fn a_bool_flag_before_a_registry_flag() {
    use crate::objects::{admit, pod};
    use serde_json::json;
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}, "spec": {"containers": [{
        "name": "build", "image": "gcr.io/kaniko-project/executor:v1.23.2",
        "args": ["--cache-copy-layers", "--cache-repo=docker-registry.registry:5000/team/cache",
                 "--destination=registry.k8s-lab.dev/team/app:v1"]}]}});
    let (admitted, _) = admit(&object, pod());
    let args = admitted["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .clone();
    assert!(
        args.contains(&json!("--cache-repo=registry.k8s-lab.dev/team/cache")),
        "{args:?}"
    );
}

/// The variables the osscontainertools fork reads as flags, in its
/// `ValidateFlags` (cmd/executor/cmd/root.go at 6bcc934434e3):
/// `os.LookupEnv` then the flag's own `Set`.
#[test]
fn kaniko_reads_its_variables_as_the_fork_defines_them() {
    let rules = Config::default().into_rules();
    let kaniko = rules
        .builders
        .iter()
        .find(|p| p.name == "kaniko")
        .expect("kaniko profile");
    let env_flags: Vec<(&str, &str)> = kaniko
        .flags
        .env_flags
        .iter()
        .map(|(name, flag)| (name.as_str(), flag.as_str()))
        .collect();
    assert_eq!(
        env_flags,
        [
            ("KANIKO_REGISTRY_MAP", "--registry-map"),
            ("KANIKO_REGISTRY_MIRROR", "--registry-mirror"),
        ]
    );
}
