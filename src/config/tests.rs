//! The file format: defaults, unknown keys and bad values, each named.
use super::*;
use crate::reference::ImageRef;

#[test]
fn defaults_are_the_decision_record() {
    let config = Config::default().into_rules();
    assert_eq!(config.rewrites.len(), 3);
    assert!(config
        .rewrites
        .iter()
        .all(|r| r.to_domain == "registry.k8s-lab.dev"));
    assert_eq!(config.image_pull_secrets(), ["registry-credentials"]);
    assert!(config.is_kind_enabled("Pod") && config.is_kind_enabled("Job"));
    assert!(!config.is_kind_enabled("Deployment"));
}

#[test]
fn kaniko_images_match_by_repository() {
    let config = Config::from_yaml("kaniko: {images: [gcr.io/kaniko-project/executor, docker.io/martizih/kaniko, docker.io/library/kaniko]}").unwrap();
    let is = |image: &str| {
        config
            .rules()
            .builder_for_image(&ImageRef::parse(image).unwrap())
            .is_some_and(|builder| builder.name == "kaniko")
    };
    assert!(is("gcr.io/kaniko-project/executor:v1.23.2"));
    assert!(is("GCR.io/kaniko-project/executor@sha256:8d2bdddf00000000000000000000000000000000000000000000000000000001"));
    assert!(is("martizih/kaniko:v1.27.0-debug"));
    assert!(is("index.docker.io/martizih/kaniko"));
    assert!(is("kaniko:latest"), "official-image shorthand");
    assert!(!is("gcr.io/kaniko-project/executor-fork:v1"));
    assert!(!is("gcr.io/kaniko-project/warmer:v1"));
    assert!(!is("quay.io/martizih/kaniko"));
    assert!(!is("gcr.io:443/kaniko-project/executor"));
}

#[test]
fn empty_file_means_defaults() {
    let config = Config::from_yaml("").unwrap();
    assert_eq!(config.file(), &ConfigFile::default());
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_yaml("rewrites:\n- from: a.b:5000\n  too: x.y\n").unwrap_err();
    assert!(err.to_string().contains("too"), "{err}");
    let err = Config::from_yaml("imagePullSecret: [x]\n").unwrap_err();
    assert!(err.to_string().contains("imagePullSecret"), "{err}");
}

#[test]
fn malformed_rule_is_named() {
    let err =
        Config::from_yaml("rewrites:\n- {from: 'a.b:5000', to: 'https://x.y'}\n").unwrap_err();
    assert_eq!(err.field, "rewrites[0].to");
}

#[test]
fn chained_rules_are_refused() {
    let yaml = "rewrites:\n- {from: 'a.local:5000', to: 'b.local:5000'}\n- {from: 'b.local:5000', to: 'c.example'}\n";
    let err = Config::from_yaml(yaml).unwrap_err();
    assert_eq!(err.field, "rewrites[0].to");
}

#[test]
fn bad_values_are_named() {
    for (yaml, field) in [
        ("imagePullSecrets: [Bad_Name]", "imagePullSecrets[0]"),
        ("kinds: [Pod, Gadget]", "kinds[1]"),
        (
            "kaniko: {images: ['gcr.io/kaniko-project/executor:v1']}",
            "kaniko.images[0]",
        ),
        (
            "kaniko: {removeFlags: ['skip-tls-verify']}",
            "kaniko.removeFlags[0]",
        ),
        ("rewrites: []", "rewrites"),
    ] {
        assert_eq!(Config::from_yaml(yaml).unwrap_err().field, field, "{yaml}");
    }
}
