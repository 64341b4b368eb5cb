//! Properties over generated pods. Expectations come from the generator's
//! own structure (which host, path, tag and digest it chose), not from the
//! parser under test.

mod objects;

use objects::{admit, assert_only_rewritable_fields_changed, pod};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn generated_pods(
        containers in prop::collection::vec(container(), 1..5),
        init in prop::collection::vec(container(), 0..2),
        existing_secrets in prop::option::of(prop::collection::vec("[a-z]{1,8}", 0..3)),
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
}
