//! Security posture: protocol versions and cipher suites as a real TLS
//! client sees them, no secret material in the logs, and the image runs as
//! non-root with the binary alone. (mTLS and the admin port are covered in
//! tests/server.rs; the hardened securityContext in tests/manifests.rs.)

use crate::live_server;
use crate::objects;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn openssl() -> Option<&'static str> {
    let works = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some("openssl");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must probe TLS with openssl, but it was not found"
    );
    eprintln!("skipping: openssl not found");
    None
}

/// Runs `openssl s_client` against the server; true when the handshake completed.
fn handshake(openssl: &str, addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(openssl)
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            live_server::SERVICE_DNS,
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let completed = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (completed, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_with_strong_suites() {
    let Some(openssl) = openssl() else { return };
    let server = live_server::start().await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // The client's own security level is lowered so that it really offers
        // the old protocols and suites; the refusal must come from the server.
        for (args, expected, what) in [
            (
                &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"][..],
                false,
                "TLS 1.0",
            ),
            (
                &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"][..],
                false,
                "TLS 1.1",
            ),
            (
                &[
                    "-tls1_2",
                    "-cipher",
                    "AES128-SHA:AES256-SHA:DES-CBC3-SHA:@SECLEVEL=0",
                ][..],
                false,
                "TLS 1.2 without forward secrecy or AEAD",
            ),
            (
                &[
                    "-tls1_2",
                    "-cipher",
                    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0",
                ][..],
                false,
                "TLS 1.2 CBC suites",
            ),
            (
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"][..],
                true,
                "TLS 1.2 ECDHE AES-GCM",
            ),
            (&["-tls1_3"][..], true, "TLS 1.3"),
        ] {
            let (completed, output) = handshake(openssl, addr, args);
            assert_eq!(completed, expected, "{what}:\n{output}");
        }
    })
    .await
    .expect("probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_material_in_logs() {
    let process = live_server::Process::start(
        &["--cert-reload-interval", "100ms", "--shutdown-delay", "0s"],
        "trace",
    );
    let client = process.client();
    for body in [
        objects::fixture_bytes("pod-create-from-deployment.json"),
        b"{not json".to_vec(),
    ] {
        let _ = client.post(body).await;
    }
    // A rotation to a key that does not match is logged as an error: the
    // message names files and the reason, never their contents.
    let served_key = std::fs::read_to_string(process.dir.path().join("tls.key")).expect("key");
    let served_cert =
        std::fs::read_to_string(process.dir.path().join("tls.crt")).expect("certificate");
    let other = live_server::generate(&[]);
    std::fs::File::create(process.dir.path().join("tls.key"))
        .and_then(|mut f| f.write_all(other.key_pem.as_bytes()))
        .expect("write");
    let mut logs = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        logs = process.logs();
        if logs.contains("new TLS certificate rejected") {
            break;
        }
    }
    process.terminate();
    assert!(
        logs.contains("new TLS certificate rejected"),
        "the rejection is logged"
    );
    assert!(
        logs.contains("admission reviewed"),
        "the reviews are logged"
    );
    assert!(!logs.contains("PRIVATE KEY") && !logs.contains("BEGIN CERTIFICATE"));
    for pem in [&served_key, &other.key_pem, &served_cert, &process.ca_pem] {
        for line in pem
            .lines()
            .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
        {
            assert!(!logs.contains(line), "PEM material in the logs");
        }
    }
}

#[test]
fn the_image_runs_as_non_root_with_the_binary_alone() {
    let dockerfile =
        std::fs::read_to_string(objects::kustomize::root().join("Dockerfile")).expect("Dockerfile");
    let final_stage = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage build")
        .1;
    assert!(
        final_stage.starts_with("gcr.io/distroless/"),
        "a distroless base: {final_stage}"
    );
    assert!(final_stage.contains("USER 65532:65532"));
    assert_eq!(final_stage.matches("COPY").count(), 1, "the binary alone");
    assert!(final_stage.contains(r#"ENTRYPOINT ["/usr/local/bin/registry-rewriter"]"#));
    assert!(final_stage.contains(r#"CMD ["serve"]"#));
    assert!(
        !final_stage.contains("RUN "),
        "nothing runs in the final stage"
    );
}
