//! The image `just image` builds (`image/build.sh`), as a cluster would
//! take it: its config and files as skopeo (containers/image) reads the OCI
//! archive, two builds of one commit alike, the binary started inside the
//! image's own filesystem as the image's user (`buildah run --isolation
//! chroot`) answering a review as `cargo run -- serve` does, and the
//! Dockerfile in step. Pushing it to the HTTPS registry is in
//! `tests/registry_lab.rs`.
//!
//! Needs buildah, skopeo, root and the release build that `just image`
//! makes; where they are missing the tests skip, and under CI they fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const IMAGE: &str = "localhost/registry-rewriter:test";
const BINARY: &str = "/usr/local/bin/registry-rewriter";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The archive of one `image/build.sh` run, built once per test binary;
/// `None` where the tools are missing (and not under CI).
fn archive() -> Option<&'static Path> {
    static ARCHIVE: OnceLock<Option<PathBuf>> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let tools = ["buildah", "skopeo"].iter().all(|t| {
                Command::new(t)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            let is_root = ok("id", &["-u"]).trim() == "0";
            let release = root().join("target/release/registry-rewriter");
            if !(tools && is_root && release.is_file()) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI has buildah, skopeo, root and `just image`'s release build"
                );
                eprintln!("skipping: needs buildah, skopeo, root and `just image` run once");
                return None;
            }
            Some(build(IMAGE))
        })
        .as_deref()
}

/// `image/build.sh image`, on the release build already there (cargo's
/// lock on the target directory is this test run's); its archive, copied.
fn build(image: &str) -> PathBuf {
    let script = root().join("image/build.sh");
    let output = Command::new(&script)
        .arg(image)
        .env(
            "IMAGE_BINARY",
            root().join("target/release/registry-rewriter"),
        )
        .output()
        .expect("image/build.sh runs");
    assert!(
        output.status.success(),
        "image/build.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let copy = std::env::temp_dir().join(format!(
        "registry-rewriter-image-{}-{}.tar",
        std::process::id(),
        image.replace(['/', ':'], "-")
    ));
    std::fs::copy(root().join("target/image/registry-rewriter.tar"), &copy).expect("copy");
    copy
}

fn oci(archive: &Path) -> String {
    format!("oci-archive:{}", archive.display())
}

fn inspect(archive: &Path, what: &str) -> Value {
    let text = ok("skopeo", &["inspect", what, &oci(archive)]);
    serde_json::from_str(&text).expect("skopeo prints JSON")
}

#[test]
fn the_config_is_what_the_manifests_expect() {
    let Some(archive) = archive() else { return };
    let config = inspect(archive, "--config");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!([BINARY]));
    assert_eq!(c["Cmd"], serde_json::json!(["serve"]));
    let ports: BTreeSet<&str> = c["ExposedPorts"]
        .as_object()
        .expect("ports")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ports, BTreeSet::from(["8080/tcp", "8443/tcp"]));

    // The Deployment runs it as this user, on these ports.
    let deployment =
        std::fs::read_to_string(root().join("manifests/base/deployment.yaml")).expect("deployment");
    for expected in [
        "runAsUser: 65532",
        "containerPort: 8443",
        "containerPort: 8080",
    ] {
        assert!(deployment.contains(expected), "{expected}");
    }

    let manifest = inspect(archive, "--raw");
    let annotations = &manifest["annotations"];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(annotations["org.opencontainers.image.version"], version);
    let revision = ok(
        "git",
        &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"],
    );
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        revision.trim()
    );
    let epoch = ok(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "log",
            "-1",
            "--format=%ct",
        ],
    );
    let created = ok(
        "date",
        &[
            "-u",
            "-d",
            &format!("@{}", epoch.trim()),
            "+%Y-%m-%dT%H:%M:%SZ",
        ],
    );
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        created.trim()
    );
    assert!(annotations["org.opencontainers.image.source"].is_string());
    assert_eq!(config["created"], created.trim());
}

/// The files of every layer, as paths without the leading `./`.
fn files(archive: &Path) -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("dir");
    ok(
        "tar",
        &[
            "-xf",
            archive.to_str().expect("UTF-8"),
            "-C",
            dir.path().to_str().expect("UTF-8"),
        ],
    );
    let manifest = inspect(archive, "--raw");
    let mut files = BTreeSet::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let blob = dir
            .path()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]);
        let list = ok("tar", &["-tvf", blob.to_str().expect("UTF-8")]);
        for line in list.lines().filter(|l| !l.starts_with('d')) {
            let path = line.split_whitespace().nth(5).expect("a path");
            files.insert(path.trim_start_matches("./").to_owned());
        }
    }
    files
}

#[test]
fn it_holds_the_binary_and_its_libraries_and_nothing_else() {
    let Some(archive) = archive() else { return };
    let files = files(archive);
    assert!(!files.contains("bin/sh"), "no shell: {files:?}");
    assert!(files.contains(&BINARY[1..]), "{files:?}");
    // Every other file is a library the binary is linked with.
    let linked = ok(
        "ldd",
        &[root()
            .join("target/release/registry-rewriter")
            .to_str()
            .expect("UTF-8")],
    );
    for file in files.iter().filter(|f| f.as_str() != &BINARY[1..]) {
        assert!(
            linked.contains(&format!("/{file}")),
            "{file} is not a library of the binary:\n{linked}"
        );
    }
}

#[test]
fn two_builds_of_one_commit_are_the_same_image() {
    let Some(archive) = archive() else { return };
    let again = build("localhost/registry-rewriter:again");
    let digest = |a: &Path| inspect(a, "--raw").to_string();
    assert_eq!(digest(archive), digest(&again), "the same manifest");
    assert_eq!(
        inspect(archive, "--config"),
        inspect(&again, "--config"),
        "the same config"
    );
    let _ = std::fs::remove_file(again);
}

#[test]
fn the_dockerfile_builds_the_same_image() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let script = std::fs::read_to_string(root().join("image/build.sh")).expect("build.sh");
    for line in [
        "USER 65532:65532",
        "EXPOSE 8443 8080",
        &format!("ENTRYPOINT [\"{BINARY}\"]"),
        "CMD [\"serve\"]",
        "cargo build --release --locked --bin registry-rewriter",
        &format!("/src/target/release/registry-rewriter {BINARY}"),
    ] {
        assert!(dockerfile.contains(line), "Dockerfile: {line}");
    }
    for line in [
        "--user 65532:65532",
        "--port 8443/tcp --port 8080/tcp",
        &format!("--entrypoint '[\"{BINARY}\"]'"),
        "--cmd serve",
        "cargo build --release --locked --bin registry-rewriter",
        &format!("\"$out/registry-rewriter\" {BINARY}"),
    ] {
        assert!(script.contains(line), "image/build.sh: {line}");
    }
}

/// A working container of the image, removed when dropped.
struct Working(String);

impl Working {
    fn from(archive: &Path) -> Self {
        Working(
            ok("buildah", &["from", "--quiet", &oci(archive)])
                .trim()
                .to_owned(),
        )
    }

    /// `buildah run` in the image's filesystem, as its own user.
    fn command(&self, mounts: &[(&Path, &str)], args: &[&str]) -> Command {
        let mut command = Command::new("buildah");
        command.args(["run", "--isolation", "chroot", "--network", "host"]);
        for (from, to) in mounts {
            command.args(["-v", &format!("{}:{to}:ro", from.display())]);
        }
        command.arg(&self.0).arg("--").args(args);
        command
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        let _ = run("buildah", &["rm", &self.0]);
    }
}

#[test]
fn it_prints_its_version() {
    let Some(archive) = archive() else { return };
    let working = Working::from(archive);
    let output = working
        .command(&[], &[BINARY, "--version"])
        .output()
        .expect("buildah run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("registry-rewriter {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `serve` inside the image, as user 65532: the README's review gets the
/// patch `cargo run -- serve` gives; a key only root may read is refused
/// at start, naming the file, as in a Pod.
#[test]
fn it_serves_the_readmes_review_as_cargo_run_does() {
    let Some(archive) = archive() else { return };
    let certs = tempfile::tempdir().expect("dir");
    ok(
        env!("CARGO_BIN_EXE_registry-rewriter"),
        &[
            "certs",
            "--out",
            certs.path().to_str().expect("UTF-8"),
            "--dns",
            "localhost",
        ],
    );
    // As a Secret volume gives it: readable by the Pod's user.
    for file in ["tls.crt", "tls.key"] {
        std::fs::set_permissions(
            certs.path().join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .expect("chmod");
    }
    std::fs::set_permissions(
        certs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let working = Working::from(archive);
    let port = free_port();
    let serve = |port: u16| {
        vec![
            BINARY.to_owned(),
            "serve".to_owned(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--admin-listen=127.0.0.1:{}", free_port()),
            "--tls-cert=/etc/registry-rewriter/tls/tls.crt".to_owned(),
            "--tls-key=/etc/registry-rewriter/tls/tls.key".to_owned(),
            "--shutdown-delay=0s".to_owned(),
        ]
    };
    let args = serve(port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mounts = [(certs.path(), "/etc/registry-rewriter/tls")];
    let server = working
        .command(&mounts, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("buildah run");
    let server = Killed(server, Some(format!("listen=127.0.0.1:{port}")));
    let in_image = review(certs.path(), port);

    let host_port = free_port();
    let host = Command::new(env!("CARGO_BIN_EXE_registry-rewriter"))
        .args(
            serve(host_port)
                .iter()
                .skip(1)
                .filter(|a| !a.starts_with("--tls-")),
        )
        .arg(format!(
            "--tls-cert={}",
            certs.path().join("tls.crt").display()
        ))
        .arg(format!(
            "--tls-key={}",
            certs.path().join("tls.key").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let host = Killed(host, None);
    let on_host = review(certs.path(), host_port);
    assert_eq!(in_image["response"], on_host["response"]);
    assert!(in_image["response"]["patch"].is_string(), "{in_image}");
    drop((server, host));

    // A key only root may read: the image's user is refused at start.
    std::fs::set_permissions(
        certs.path().join("tls.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let refused = working
        .command(&mounts, &args)
        .output()
        .expect("buildah run");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("/etc/registry-rewriter/tls/tls.key"),
        "{stderr}"
    );
}

/// A child process killed when dropped. `buildah run` starts the program
/// in a process of its own, which outlives `buildah` when that is killed:
/// it is found by a pattern of its command line and killed too.
struct Killed(std::process::Child, Option<String>);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(pattern) = &self.1 {
            let _ = run("pkill", &["-KILL", "-f", pattern]);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("address")
        .port()
}

/// The README's curl against `port`, once the server answers.
fn review(certs: &Path, port: u16) -> Value {
    let fixture = root().join("tests/fixtures/pod-create-from-deployment.json");
    let started = Instant::now();
    loop {
        let output = run(
            "curl",
            &[
                "-sS",
                "--cacert",
                certs.join("ca.crt").to_str().expect("UTF-8"),
                "-H",
                "content-type: application/json",
                "--data",
                &format!("@{}", fixture.display()),
                &format!("https://localhost:{port}/mutate"),
            ],
        );
        if output.status.success() {
            return serde_json::from_slice(&output.stdout).expect("a review");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve answers: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
