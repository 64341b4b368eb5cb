//! What the cluster does with what we admit, for real: the decision
//! record's two registry endpoints (`registry-lab`: the internal name on
//! plain HTTP, `registry.k8s-lab.dev` on TLS with basic auth, one storage).
//!
//! - Pulls go through `skopeo`, which is containers/image, CRI-O's pull
//!   library, with the Pod's `imagePullSecrets`.
//! - A Buildah build runs for real. Its container is set up as the kubelet
//!   would: each Secret volume written out with its `items`, bind-mounted
//!   read-only at its `mountPath`, and the container's `env`; then its
//!   `command` and `args` run.
//! - Kaniko and BuildKit cannot run here. For them, the file at the path
//!   their builder reads must hold an account the HTTPS endpoint accepts.
//!
//! Each test re-runs itself inside the lab (`registry-lab -- <this test>`),
//! which needs root and the Debian packages the README names. The lab is
//! found through `REGISTRY_LAB`, or beside the checkout; where it or root
//! is missing the tests skip, and under CI they fail.

mod objects;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use objects::{admit, pod};
use serde_json::{json, Value};

/// The lab's environment, inside it.
struct Lab {
    dir: PathBuf,
    internal: String,
    external: String,
    image: String,
    /// What `registry-credentials` holds under `.dockerconfigjson`.
    dockerconfigjson: PathBuf,
}

/// Inside the lab, its environment; outside, runs `test` inside it, checks
/// that it passed, and returns `None`.
fn enter(test: &str) -> Option<Lab> {
    if let Some(dir) = std::env::var_os("LAB_DIR") {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} in the lab"));
        return Some(Lab {
            dir: dir.into(),
            internal: var("LAB_INTERNAL"),
            external: var("LAB_EXTERNAL"),
            image: var("LAB_IMAGE"),
            dockerconfigjson: var("LAB_DOCKERCONFIGJSON").into(),
        });
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lab = std::env::var_os("REGISTRY_LAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/tools/registry-lab/registry-lab"));
    let lab = objects::tools::file(lab, "the registry lab (set REGISTRY_LAB)")?;
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the registry lab as root"
        );
        eprintln!("skipping: the registry lab needs root");
        return None;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let output = Command::new(&lab)
        .arg("--")
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .output()
        .expect("registry-lab runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{test} in the lab:\n{text}");
    assert!(text.contains("1 passed"), "{test} ran in the lab:\n{text}");
    None
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `skopeo copy`, as CRI-O pulls: the manifest, the config and the layers.
fn pull(lab: &Lab, image: &str, authfile: Option<&Path>) -> Output {
    static PULLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pull = PULLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let target = lab.dir.join(format!("pulled-{pull}"));
    let destination = format!("dir:{}", target.display());
    let source = format!("docker://{image}");
    let mut args = vec!["copy", "--quiet"];
    let authfile = authfile.map(|p| p.display().to_string());
    if let Some(file) = &authfile {
        args.extend(["--src-authfile", file]);
    }
    args.extend([source.as_str(), destination.as_str()]);
    run("skopeo", &args)
}

/// The lab's Secrets: `registry-credentials` (and `own-credentials`, the
/// same account under another name) hold the HTTPS endpoint's account.
fn secret_content(lab: &Lab, name: &str) -> Option<Vec<u8>> {
    match name {
        "registry-credentials" | "own-credentials" => {
            Some(std::fs::read(&lab.dockerconfigjson).expect("the lab's dockerconfigjson"))
        }
        _ => None,
    }
}

/// The Pod's pull secrets that exist, merged as the kubelet hands them to
/// the runtime: one auth file.
fn pull_authfile(lab: &Lab, spec: &Value) -> Option<PathBuf> {
    let names = objects::cluster::pull_secret_names(spec);
    let content = names.iter().find_map(|name| secret_content(lab, name))?;
    let path = lab.dir.join("pull-auth.json");
    std::fs::write(&path, content).expect("write");
    Some(path)
}

/// Sets a container up as the kubelet does, then runs it: every Secret
/// volume it mounts written out with its `items` and bind-mounted
/// read-only at its `mountPath` (an optional Secret that does not exist is
/// an empty directory), its `env`, and its `command` and `args`.
fn run_container(lab: &Lab, spec: &Value, container: &Value) -> Output {
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let mut created: Vec<PathBuf> = Vec::new();
    for (i, mount) in container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = mount["name"].as_str().expect("a mount's volume");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"));
        let source = lab.dir.join(format!("volume-{i}"));
        std::fs::create_dir_all(&source).expect("dir");
        let secret = &volume["secret"];
        let secret_name = secret["secretName"]
            .as_str()
            .expect("only Secret volumes here");
        match secret_content(lab, secret_name) {
            Some(content) => {
                for item in secret["items"].as_array().expect("items") {
                    assert_eq!(item["key"], ".dockerconfigjson", "the Secret's one key");
                    let path = source.join(item["path"].as_str().expect("path"));
                    std::fs::write(path, &content).expect("write");
                }
            }
            None => assert_eq!(
                secret["optional"], true,
                "a missing Secret that is not optional"
            ),
        }
        let target = mount["mountPath"].as_str().expect("mountPath");
        // The mount point, made for the run and removed after it (the
        // namespace keeps the mount, not the directory, to itself).
        let mut missing = Path::new(target);
        while !missing.exists() {
            created.push(missing.to_path_buf());
            missing = missing.parent().expect("below /");
        }
        std::fs::create_dir_all(target).expect("the mount point");
        let source_text = source.display().to_string();
        let bound = run("mount", &["--bind", &source_text, target]);
        assert!(bound.status.success(), "{}", text(&bound));
        if mount["readOnly"] == true {
            let read_only = run("mount", &["-o", "remount,bind,ro", target]);
            assert!(read_only.status.success(), "{}", text(&read_only));
        }
    }
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().expect("a string").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let command = strings(&container["command"]);
    let args = strings(&container["args"]);
    let (program, rest) = command.split_first().expect("a command");
    let mut process = Command::new(program);
    process.args(rest).args(&args).env_clear();
    process.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    process.env("HOME", lab.dir.join("home"));
    for variable in container["env"].as_array().cloned().unwrap_or_default() {
        let name = variable["name"].as_str().expect("a name");
        process.env(name, variable["value"].as_str().unwrap_or_default());
    }
    let output = process.output().expect("the container's command runs");
    for mount in container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let _ = run("umount", &[mount["mountPath"].as_str().expect("mountPath")]);
    }
    for dir in created {
        let _ = std::fs::remove_dir(dir);
    }
    output
}

/// Buildah's storage for this test, and an image in it to push.
fn storage(lab: &Lab) -> Vec<String> {
    let root = lab.dir.join("storage");
    let flags = vec![
        "--root".to_owned(),
        root.join("root").display().to_string(),
        "--runroot".to_owned(),
        root.join("run").display().to_string(),
        "--storage-driver".to_owned(),
        "vfs".to_owned(),
    ];
    let source = format!("docker://{}/{}", lab.external, lab.image);
    let authfile = lab.dockerconfigjson.display().to_string();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["pull", "-q", "--authfile", &authfile, &source]);
    let pulled = run("buildah", &args);
    assert!(pulled.status.success(), "{}", text(&pulled));
    flags
}

/// A Pod whose one container runs `buildah push` of the lab's image to
/// `destination`, as a build pushed to the internal registry before.
fn buildah_push_pod(lab: &Lab, flags: &[String], destination: &str, extra: Value) -> Value {
    let mut command = vec![json!("buildah")];
    command.extend(flags.iter().map(|f| json!(f)));
    let mut container = json!({
        "name": "push",
        "image": "quay.io/buildah/stable:v1.40",
        "command": command,
        "args": ["push", "--tls-verify=false", format!("{}/{}", lab.external, lab.image), format!("docker://{destination}")],
    });
    if let Value::Object(extra) = extra {
        container.as_object_mut().expect("an object").extend(extra);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "push", "namespace": "team"},
           "spec": {"containers": [container], "restartPolicy": "Never"}})
}

#[test]
fn an_admitted_pod_pulls_and_the_same_pod_not_admitted_does_not() {
    let Some(lab) = enter("an_admitted_pod_pulls_and_the_same_pod_not_admitted_does_not") else {
        return;
    };
    let internal = format!("{}/{}", lab.internal, lab.image);
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"},
        "spec": {"containers": [{"name": "web", "image": internal}],
                 "initContainers": [{"name": "init", "image": format!("docker-registry.registry.svc:5000/{}", lab.image)}]}});

    // Not admitted: the decision record's own error.
    let refused = pull(&lab, &internal, None);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("http: server gave HTTP response to HTTPS client"),
        "{}",
        text(&refused)
    );

    // Admitted: every image pulls, with the Pod's pull secrets only.
    let (admitted, _) = admit(&original, pod());
    let spec = &admitted["spec"];
    let authfile = pull_authfile(&lab, spec).expect("the Pod names registry-credentials");
    for list in ["containers", "initContainers"] {
        for container in spec[list].as_array().expect("containers") {
            let image = container["image"].as_str().expect("an image");
            assert!(image.starts_with(&lab.external), "{image}");
            let pulled = pull(&lab, image, Some(&authfile));
            assert!(pulled.status.success(), "{image}: {}", text(&pulled));
        }
    }
}

#[test]
fn a_moved_buildah_push_pushes_with_the_mounted_secret() {
    let Some(lab) = enter("a_moved_buildah_push_pushes_with_the_mounted_secret") else {
        return;
    };
    let flags = storage(&lab);
    let destination = format!("{}/dynamic-apps/pushed:v1", lab.internal);
    let original = buildah_push_pod(&lab, &flags, &destination, json!({}));

    // Before admission it pushed to the internal registry, with no credential.
    let before = run_container(&lab, &original["spec"], &original["spec"]["containers"][0]);
    assert!(before.status.success(), "{}", text(&before));

    let (admitted, mutation) = admit(&original, pod());
    let spec = &admitted["spec"];
    let container = &spec["containers"][0];
    let pushed_to = format!("docker://{}/dynamic-apps/pushed:v1", lab.external);
    assert!(container["args"]
        .as_array()
        .expect("args")
        .contains(&json!(pushed_to)));
    assert!(mutation
        .changes
        .iter()
        .any(|c| c.message.contains("REGISTRY_AUTH_FILE")));

    // Without the credential the moved push is refused, as it was before
    // this fix; with it, it lands, and pulls back over HTTPS.
    let mut bare = container.clone();
    bare.as_object_mut().expect("object").remove("env");
    bare.as_object_mut().expect("object").remove("volumeMounts");
    let refused = run_container(&lab, spec, &bare);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("authentication required"),
        "{}",
        text(&refused)
    );

    let pushed = run_container(&lab, spec, container);
    assert!(pushed.status.success(), "{}", text(&pushed));
    let image = format!("{}/dynamic-apps/pushed:v1", lab.external);
    let pulled = pull(&lab, &image, Some(&lab.dockerconfigjson));
    assert!(pulled.status.success(), "{}", text(&pulled));
}

#[test]
fn a_push_with_its_own_credential_keeps_it_and_pushes() {
    let Some(lab) = enter("a_push_with_its_own_credential_keeps_it_and_pushes") else {
        return;
    };
    let flags = storage(&lab);
    let destination = format!("{}/dynamic-apps/own:v1", lab.internal);
    let own = json!({
        "env": [{"name": "REGISTRY_AUTH_FILE", "value": "/var/run/own-credentials/auth.json"}],
        "volumeMounts": [{"name": "own", "mountPath": "/var/run/own-credentials", "readOnly": true}],
    });
    let mut original = buildah_push_pod(&lab, &flags, &destination, own.clone());
    original["spec"]["volumes"] = json!([{"name": "own", "secret": {"secretName": "own-credentials",
        "items": [{"key": ".dockerconfigjson", "path": "auth.json"}]}}]);
    let (admitted, mutation) = admit(&original, pod());
    let spec = &admitted["spec"];
    let container = &spec["containers"][0];
    assert_eq!(container["env"], own["env"]);
    assert_eq!(container["volumeMounts"], own["volumeMounts"]);
    assert_eq!(spec["volumes"], original["spec"]["volumes"]);
    assert!(mutation
        .warnings
        .iter()
        .any(|w| w.contains("brings its own registry credential")));

    let pushed = run_container(&lab, spec, container);
    assert!(pushed.status.success(), "{}", text(&pushed));
}

/// Kaniko and BuildKit cannot run here: the file their builder reads, as
/// the kubelet lays it out, holds an account the HTTPS endpoint accepts.
#[test]
fn kaniko_and_buildkit_find_the_account_where_they_read_credentials() {
    let Some(lab) = enter("kaniko_and_buildkit_find_the_account_where_they_read_credentials")
    else {
        return;
    };
    let destination = format!("--destination={}/dynamic-apps/app:v1", lab.internal);
    let output = format!(
        "type=image,name={}/dynamic-apps/app:v1,push=true,registry.insecure=true",
        lab.internal
    );
    let pods = [
        // Kaniko reads $DOCKER_CONFIG/config.json; its image sets
        // DOCKER_CONFIG=/kaniko/.docker/.
        (
            json!({"name": "build", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": [destination]}),
            "/kaniko/.docker/",
        ),
        // buildctl reads $DOCKER_CONFIG/config.json.
        (
            json!({"name": "build", "image": "moby/buildkit:v0.23.0", "command": ["buildctl-daemonless.sh"],
                "args": ["build", "--output", output]}),
            "",
        ),
    ];
    for (container, image_docker_config) in pods {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "team"},
                              "spec": {"containers": [container]}});
        let (admitted, _) = admit(&original, pod());
        let spec = &admitted["spec"];
        let mut built = spec["containers"][0].clone();
        // The builder's own lookup: its DOCKER_CONFIG (the image's, unless
        // the container sets one), then config.json in it.
        let docker_config = built["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == "DOCKER_CONFIG"))
            .and_then(|e| e["value"].as_str().map(str::to_owned))
            .unwrap_or_else(|| image_docker_config.to_owned());
        assert!(!docker_config.is_empty(), "{built}");
        let file = Path::new(&docker_config)
            .join("config.json")
            .display()
            .to_string();
        let image = format!("docker://{}/{}", lab.external, lab.image);
        built["command"] = json!(["skopeo", "inspect", "--authfile", file, image]);
        built["args"] = json!([]);
        let inspected = run_container(&lab, spec, &built);
        assert!(inspected.status.success(), "{}", text(&inspected));
    }
}

/// The image `just image` builds, shipped as the README says: `just
/// image-push IMAGE=registry.k8s-lab.dev/platform/registry-rewriter:test`
/// lands over TLS with the lab's credential, and a pull as CRI-O pulls
/// (skopeo, containers/image) with the pull secret gives the digest pushed.
#[test]
fn the_image_ships_to_the_https_registry() {
    let Some(lab) = enter("the_image_ships_to_the_https_registry") else {
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let release = root.join("target/release/registry-rewriter");
    assert!(
        release.is_file() || std::env::var_os("CI").is_none(),
        "CI runs `just image` first"
    );
    if !release.is_file() {
        eprintln!("skipping: `just image` has not been run");
        return;
    }
    let image = format!("{}/platform/registry-rewriter:test", lab.external);
    let built = Command::new(root.join("image/build.sh"))
        .arg(&image)
        .env("IMAGE_BINARY", &release)
        .output()
        .expect("image/build.sh");
    assert!(built.status.success(), "{}", text(&built));
    let digest_file = lab.dir.join("pushed.digest");
    let authfile = lab.dockerconfigjson.display().to_string();
    let digest_arg = format!("--digestfile={}", digest_file.display());
    let pushed = Command::new("just")
        .current_dir(&root)
        .env("IMAGE", &image)
        .args(["image-push", "--authfile", &authfile, &digest_arg])
        .output()
        .expect("just image-push");
    assert!(pushed.status.success(), "{}", text(&pushed));
    let digest = std::fs::read_to_string(&digest_file).expect("the pushed digest");

    let inspected = run(
        "skopeo",
        &[
            "inspect",
            "--authfile",
            &authfile,
            &format!("docker://{image}"),
        ],
    );
    assert!(inspected.status.success(), "{}", text(&inspected));
    let inspected: Value = serde_json::from_slice(&inspected.stdout).expect("JSON");
    assert_eq!(inspected["Digest"], digest.trim());
    let _ = run("buildah", &["rmi", &image]);
}
