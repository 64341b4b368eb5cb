//! Properties over generated pods. Expectations come from the generator's
//! own structure (which host, path, tag and digest it chose), not from the
//! parser under test.

use crate::objects;

use objects::{admit, assert_only_rewritable_fields_changed, pod};
use prop::sample::select;
use proptest::prelude::*;
use serde_json::{json, Value};

const INTERNAL_HOSTS: &[&str] = &[
    "docker-registry.registry.svc.cluster.local",
    "docker-registry.registry.svc",
    "docker-registry.registry",
];

/// Registries that must never be rewritten, including near misses.
const OTHER_REGISTRIES: &[&str] = &[
    "registry.k8s-lab.dev",
    "docker.io",
    "quay.io",
    "docker-registry.registry.svc.cluster.local:50001",
    "docker-registry.registry.svc.cluster.local:500",
    "docker-registry.registry.svc.cluster.local",
    "mydocker-registry.registry:5000",
    "docker-registry.registry.svc.cluster:5000",
    "docker-registry.registry.evil.io:5000",
    "localhost:5000",
];

#[derive(Debug, Clone)]
enum Host {
    /// Index into INTERNAL_HOSTS, with a case pattern applied.
    Internal(usize, Vec<bool>),
    Other(usize),
    /// Docker Hub shorthand: no registry at all.
    None,
}

#[derive(Debug, Clone)]
struct Reference {
    host: Host,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    fn rest(&self) -> String {
        let mut rest = self.path.clone();
        if let Some(tag) = &self.tag {
            rest.push(':');
            rest.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            rest.push('@');
            rest.push_str(digest);
        }
        rest
    }

    fn text(&self) -> String {
        match &self.host {
            Host::Internal(i, case) => {
                let host: String = INTERNAL_HOSTS[*i]
                    .chars()
                    .zip(case.iter().cycle())
                    .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c })
                    .collect();
                format!("{host}:5000/{}", self.rest())
            }
            Host::Other(i) => format!("{}/{}", OTHER_REGISTRIES[*i], self.rest()),
            Host::None => self.rest(),
        }
    }

    /// What admission must turn this reference into.
    fn expected(&self) -> String {
        match self.host {
            Host::Internal(..) => format!("registry.k8s-lab.dev/{}", self.rest()),
            _ => self.text(),
        }
    }

    fn ends_on_external(&self) -> bool {
        matches!(self.host, Host::Internal(..)) || matches!(self.host, Host::Other(0))
    }
}

fn reference() -> impl Strategy<Value = Reference> {
    let host = prop_oneof![
        3 => (0..INTERNAL_HOSTS.len(), prop::collection::vec(prop::bool::weighted(0.1), 1..8))
            .prop_map(|(i, case)| Host::Internal(i, case)),
        3 => (0..OTHER_REGISTRIES.len()).prop_map(Host::Other),
        1 => Just(Host::None),
    ];
    let component = "[a-z0-9]{1,4}([._-][a-z0-9]{1,4})?";
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}");
    let digest = prop::option::of("[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")));
    (host, path, tag, digest).prop_map(|(host, path, tag, digest)| Reference {
        host,
        path,
        tag,
        digest,
    })
}

#[derive(Debug, Clone)]
struct Container {
    image: Reference,
    /// Plain, or a Kaniko build with these (flag, reference) arguments.
    kaniko_args: Option<Vec<(String, Reference)>>,
    plain_args: Vec<String>,
}

fn container() -> impl Strategy<Value = Container> {
    let flag = prop::sample::select(vec![
        "--destination=",
        "-d=",
        "--cache-repo=",
        "-d",
        "--destination",
    ]);
    let kaniko_args = prop::option::weighted(
        0.3,
        prop::collection::vec((flag.prop_map(str::to_owned), reference()), 0..4),
    );
    let plain_args = prop::collection::vec("[ -~]{0,12}", 0..3);
    (reference(), kaniko_args, plain_args).prop_map(|(image, kaniko_args, plain_args)| Container {
        image,
        kaniko_args,
        plain_args,
    })
}

fn container_json(name: String, c: &Container) -> Value {
    match &c.kaniko_args {
        None => {
            json!({"name": name, "image": c.image.text(), "args": c.plain_args, "env": [{"name": "A", "value": "1"}]})
        }
        Some(flags) => {
            let mut args: Vec<String> = vec!["--context=dir:///workspace".into()];
            for (flag, reference) in flags {
                if flag.ends_with('=') {
                    args.push(format!("{flag}{}", reference.text()));
                } else {
                    args.push(flag.clone());
                    args.push(reference.text());
                }
            }
            json!({"name": name, "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": args})
        }
    }
}

fn expected_kaniko_args(flags: &[(String, Reference)]) -> Vec<String> {
    let mut args: Vec<String> = vec!["--context=dir:///workspace".into()];
    for (flag, reference) in flags {
        if flag.ends_with('=') {
            args.push(format!("{flag}{}", reference.expected()));
        } else {
            args.push(flag.clone());
            args.push(reference.expected());
        }
    }
    args
}

/// How a generated build runs: a builder, directly or under a CI wrapper.
#[derive(Debug, Clone, Copy)]
enum Runs {
    Kaniko,
    KanikoInTekton,
    BuildKit,
    BuildKitInArgo,
    BuildahPush,
    BuildahFrom,
}

/// One argument of a generated build: kept as it is, an image reference
/// behind a prefix, or a TLS-weakening flag the engine may remove.
#[derive(Debug, Clone)]
enum Piece {
    Kept(String),
    Image(&'static str, Reference),
    /// BuildKit CSV: `type=image,name=A[,B]` quoted when several, and
    /// `registry.insecure=true` when asked for.
    Output(Vec<Reference>, bool),
    Weakening(&'static str),
}

impl Piece {
    fn text(&self) -> String {
        match self {
            Piece::Kept(text) => text.clone(),
            Piece::Image(prefix, reference) => format!("{prefix}{}", reference.text()),
            Piece::Output(names, insecure) => output(names.iter().map(Reference::text), *insecure),
            Piece::Weakening(flag) => (*flag).to_owned(),
        }
    }

    /// What admission must make of it; `None` for a flag it may remove.
    fn expected(&self) -> Option<String> {
        match self {
            Piece::Kept(text) => Some(text.clone()),
            Piece::Image(prefix, reference) => Some(format!("{prefix}{}", reference.expected())),
            Piece::Output(names, insecure) => {
                let all_external = names.iter().all(Reference::ends_on_external);
                Some(output(
                    names.iter().map(Reference::expected),
                    *insecure && !all_external,
                ))
            }
            Piece::Weakening(_) => None,
        }
    }
}

fn output(names: impl Iterator<Item = String>, insecure: bool) -> String {
    let names: Vec<String> = names.collect();
    let field = format!("name={}", names.join(","));
    let field = if names.len() > 1 {
        format!("\"{field}\"")
    } else {
        field
    };
    let insecure = if insecure {
        ",registry.insecure=true"
    } else {
        ""
    };
    format!("type=image,{field},push=true{insecure}")
}

fn build() -> impl Strategy<Value = (Runs, Vec<Piece>)> {
    let kept = select(vec![
        "--cache=true",
        "--label=x=--insecure",
        "--verbosity=info",
        "--build-arg=A=--skip-tls-verify",
    ])
    .prop_map(|t| Piece::Kept(t.to_owned()));
    let kaniko_piece = prop_oneof![
        2 => (select(vec!["--destination=", "-d=", "--cache-repo=", "-d"]), reference())
            .prop_map(|(prefix, r)| Piece::Image(prefix, r)),
        1 => select(vec!["--skip-tls-verify", "--insecure", "--skip-tls-verify-pull"]).prop_map(Piece::Weakening),
        1 => kept,
    ];
    let kaniko = prop::collection::vec(kaniko_piece, 0..5).boxed();
    let buildkit = (prop::collection::vec(reference(), 1..3), any::<bool>())
        .prop_map(|(names, insecure)| {
            vec![
                Piece::Kept("build".into()),
                Piece::Kept("--output".into()),
                Piece::Output(names, insecure),
            ]
        })
        .boxed();
    let buildah_push = (reference(), any::<bool>()).prop_map(|(dest, tls)| {
        let mut pieces = vec![Piece::Kept("push".into())];
        if tls {
            pieces.push(Piece::Weakening("--tls-verify=false"));
        }
        pieces.push(Piece::Kept("app".into()));
        pieces.push(Piece::Image("docker://", dest));
        pieces
    });
    let buildah_from = reference().prop_map(|base| {
        vec![
            Piece::Kept("from".into()),
            Piece::Weakening("--tls-verify=false"),
            Piece::Image("", base),
        ]
    });
    prop_oneof![
        kaniko.clone().prop_map(|p| (Runs::Kaniko, p)),
        kaniko.prop_map(|p| (Runs::KanikoInTekton, p)),
        buildkit.clone().prop_map(|p| (Runs::BuildKit, p)),
        buildkit.prop_map(|p| (Runs::BuildKitInArgo, p)),
        buildah_push.prop_map(|p| (Runs::BuildahPush, p)),
        buildah_from.prop_map(|p| (Runs::BuildahFrom, p)),
    ]
}

/// The container, and how many of its leading args belong to a wrapper.
/// `mirrored`: a builder found by its command runs an image copied to the
/// HTTPS registry.
fn build_container(build: Runs, pieces: &[Piece], mirrored: bool) -> (Value, usize) {
    let (container, skip) = build_container_from(build, pieces);
    let mut container = container;
    if mirrored && container.get("command").is_some() {
        let image = container["image"].as_str().unwrap_or_default();
        let path = image.split_once('/').map_or(image, |(_, path)| path);
        container["image"] = json!(format!("registry.k8s-lab.dev/{path}"));
    }
    (container, skip)
}

fn build_container_from(build: Runs, pieces: &[Piece]) -> (Value, usize) {
    let args: Vec<String> = pieces.iter().map(Piece::text).collect();
    let tekton = |program: &str| -> Vec<String> {
        [
            "-post_file",
            "/tekton/run/0/out",
            "-entrypoint",
            program,
            "--",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    match build {
        Runs::Kaniko => (
            json!({"name": "b", "image": "gcr.io/kaniko-project/executor:v1.23.2", "args": args}),
            0,
        ),
        Runs::KanikoInTekton => {
            let wrapper = tekton("/kaniko/executor");
            let skip = wrapper.len();
            let all: Vec<String> = wrapper.into_iter().chain(args).collect();
            (
                json!({"name": "b", "image": "gcr.io/kaniko-project/executor:v1.23.2", "command": ["/tekton/bin/entrypoint"], "args": all}),
                skip,
            )
        }
        Runs::BuildKit => (
            json!({"name": "b", "image": "moby/buildkit:v0.18.2", "command": ["buildctl"], "args": args}),
            0,
        ),
        Runs::BuildKitInArgo => (
            json!({"name": "b", "image": "moby/buildkit:v0.18.2",
            "command": ["/var/run/argo/argoexec", "emissary", "--loglevel", "info", "--", "buildctl-daemonless.sh"], "args": args}),
            0,
        ),
        Runs::BuildahPush | Runs::BuildahFrom => (
            json!({"name": "b", "image": "quay.io/buildah/stable:v1.38", "command": ["buildah"], "args": args}),
            0,
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn generated_pods(
        containers in prop::collection::vec(container(), 1..5),
        init in prop::collection::vec(container(), 0..2),
        existing_secrets in prop::option::of(prop::collection::vec(prop_oneof![
            3 => "[a-z]{1,8}",
            1 => Just("registry-credentials".to_owned()),
        ], 0..3)),
    ) {
        let mut spec = json!({
            "containers": containers.iter().enumerate().map(|(i, c)| container_json(format!("c{i}"), c)).collect::<Vec<_>>(),
            "restartPolicy": "Always",
            "unknownFutureField": {"x": [1, 2]}
        });
        if !init.is_empty() {
            spec["initContainers"] = init.iter().enumerate().map(|(i, c)| container_json(format!("i{i}"), c)).collect();
        }
        if let Some(secrets) = &existing_secrets {
            spec["imagePullSecrets"] = secrets.iter().map(|n| json!({"name": n})).collect();
        }
        let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": spec, "status": {"phase": "Pending"}});

        // Applies, and is idempotent (checked inside `admit`).
        let (admitted, _) = admit(&original, pod());
        assert_only_rewritable_fields_changed(&original, &admitted);

        for (list, generated) in [("containers", &containers), ("initContainers", &init)] {
            for (i, c) in generated.iter().enumerate() {
                let got = &admitted["spec"][list][i];
                match &c.kaniko_args {
                    None => {
                        prop_assert_eq!(&got["image"], &json!(c.image.expected()));
                        prop_assert_eq!(&got["args"], &json!(c.plain_args), "non-Kaniko args are never touched");
                    }
                    Some(flags) => {
                        let args: Vec<String> = serde_json::from_value(got["args"].clone()).unwrap();
                        let expected = expected_kaniko_args(flags);
                        let added = args.len() - expected.len();
                        for extra in &args[..added] {
                            prop_assert!(extra.starts_with("--registry-map="), "only maps are added, first: {}", extra);
                        }
                        prop_assert_eq!(&args[added..], &expected[..]);
                    }
                }
            }
        }

        let any_external = containers.iter().chain(&init)
            .any(|c| c.kaniko_args.is_none() && c.image.ends_on_external());
        let secrets = admitted["spec"]["imagePullSecrets"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = secrets.iter().filter_map(|s| s["name"].as_str()).collect();
        let before: Vec<String> = existing_secrets.clone().unwrap_or_default();
        prop_assert_eq!(&names[..before.len()], &before.iter().map(String::as_str).collect::<Vec<_>>()[..], "existing entries keep their order");
        let count = names.iter().filter(|n| **n == "registry-credentials").count();
        if any_external {
            prop_assert!(count >= 1);
        }
        if !before.iter().any(|n| n == "registry-credentials") {
            prop_assert!(count <= 1, "never duplicated");
            prop_assert_eq!(count == 1, any_external);
        }
    }

    #[test]
    fn arbitrary_images_never_panic_and_always_apply(image in "\\PC{0,80}", args in prop::collection::vec("\\PC{0,30}", 0..6)) {
        let original = json!({"kind": "Pod", "metadata": {}, "spec": {"containers": [
            {"name": "a", "image": image},
            {"name": "k", "image": "gcr.io/kaniko-project/executor", "args": args}
        ]}});
        let (admitted, _) = admit(&original, pod());
        assert_only_rewritable_fields_changed(&original, &admitted);
    }

    /// Every builder and wrapper: the patch applies and is idempotent, only
    /// `command` and `args` change, each generated reference ends as the
    /// generator says, and nothing but TLS-weakening flags is removed and
    /// nothing but registry maps added.
    #[test]
    fn generated_builds((build, pieces) in build(), mirrored in any::<bool>(), with_secret in any::<bool>()) {
        let (container, wrapper_args) = build_container(build, &pieces, mirrored);
        let mut original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}});
        if with_secret {
            original["spec"]["imagePullSecrets"] = json!([{"name": "registry-credentials"}]);
        }
        let (admitted, _) = admit(&original, pod());
        assert_only_rewritable_fields_changed(&original, &admitted);
        let got = &admitted["spec"]["containers"][0];
        prop_assert_eq!(&got["command"], &original["spec"]["containers"][0]["command"], "the wrapper and the program stay");
        let args: Vec<String> = serde_json::from_value(got["args"].clone()).unwrap_or_default();
        let original_args: Vec<String> = serde_json::from_value(original["spec"]["containers"][0]["args"].clone()).unwrap_or_default();
        prop_assert_eq!(&args[..wrapper_args], &original_args[..wrapper_args], "the wrapper's own args stay");
        let weakening: Vec<String> = pieces.iter().filter(|p| p.expected().is_none()).map(Piece::text).collect();
        let kept: Vec<&String> = args[wrapper_args..]
            .iter()
            .filter(|a| !a.starts_with("--registry-map=") && !weakening.contains(a))
            .collect();
        let expected: Vec<String> = pieces.iter().filter_map(Piece::expected).collect();
        prop_assert_eq!(kept, expected.iter().collect::<Vec<_>>());
    }
}
