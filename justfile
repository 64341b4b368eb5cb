# registry-rewriter: common tasks. `just --list` explains each recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

image := env_var_or_default("IMAGE", "registry.k8s-lab.dev/platform/registry-rewriter:" + `grep -m1 '^version' Cargo.toml | cut -d'"' -f2`)
service := "registry-rewriter"
namespace := "registry-rewriter"

[private]
default:
    @just --list

# Build the binary (debug)
build:
    cargo build

# Run the test suite: unit, engine, TLS server and end-to-end tests
test:
    cargo test

# Check formatting and lints, as CI does
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Format the code
fmt:
    cargo fmt --all

# Serve the webhook on localhost with development certificates in ./certs
run *args:
    cargo run -- serve --listen 127.0.0.1:8443 --admin-listen 127.0.0.1:8080 {{args}}

# Serve, post an AdmissionReview fixture over TLS, and show the response and its patch
demo fixture="tests/fixtures/pod-create-from-deployment.json":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet
    ./target/debug/registry-rewriter serve --listen 127.0.0.1:8443 --admin-listen 127.0.0.1:8080 --shutdown-delay 0s &
    server=$!
    trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
    for _ in $(seq 100); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.1; done
    response=$(curl -sS --cacert certs/ca.crt -H 'Content-Type: application/json' \
        --data @{{fixture}} https://localhost:8443/mutate)
    if command -v jq >/dev/null; then
        echo "$response" | jq .
        echo "--- the patch, decoded:"
        echo "$response" | jq -r '.response.patch // empty' | base64 -d | jq .
    else
        echo "$response"
    fi

# Generate a CA and serving certificate for the cluster (and localhost) into certs/; prints the caBundle
certs *args:
    cargo run --quiet -- certs --service {{service}} --namespace {{namespace}} --out certs --dns localhost --ip 127.0.0.1 {{args}}

# Write manifests/overlays/policy/policy.yaml from the default configuration
policy:
    cargo run --quiet -- policy > manifests/overlays/policy/policy.yaml

# Write the guard overlays again from `registry-rewriter guard`
guard:
    cargo run --quiet -- guard > manifests/overlays/guard/guard.yaml
    cargo run --quiet -- guard --deny > manifests/overlays/guard-deny/guard.yaml

# Install into the current kube context with certificates from certs/ (no cert-manager)
deploy:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -f certs/tls.crt ] || [ ! -f certs/tls.key ] || [ ! -f certs/ca.crt ]; then just certs; fi
    kubectl apply -k certs/
    kubectl -n {{namespace}} rollout status deployment/registry-rewriter --timeout=120s

# Install into the current kube context with cert-manager issuing the certificate
deploy-cert-manager:
    kubectl apply -k manifests/overlays/cert-manager
    kubectl -n {{namespace}} rollout status deployment/registry-rewriter --timeout=120s

# Remove from the cluster: the webhook configuration first, so nothing ever calls a missing webhook
undeploy:
    kubectl delete mutatingwebhookconfiguration registry-rewriter --ignore-not-found
    kubectl delete -k manifests/overlays/sync-secrets --ignore-not-found
    kubectl delete -k manifests/ --ignore-not-found

# Install sync-secrets next to the webhook or the policy: a copy of the pull secret in every namespace
deploy-sync-secrets:
    kubectl apply -k manifests/overlays/sync-secrets
    kubectl -n {{namespace}} rollout status deployment/registry-rewriter-sync-secrets --timeout=120s

# sync-secrets on a local API server (KUBE_LITE, or kube-lite on PATH): copies appear, then follow a rotation
demo-sync:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet
    server=${KUBE_LITE:-$(command -v kube-lite || true)}
    [ -n "$server" ] && [ -x "$server" ] || { echo "demo-sync needs kube-lite, a small API server from k8s.io/apiserver: set KUBE_LITE" >&2; exit 2; }
    work=$(mktemp -d)
    "$server" --data-dir "$work/api" >"$work/api.log" 2>&1 &
    api=$!
    trap 'kill $controller $api 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
    controller=
    until [ -f "$work/api/kubeconfig" ]; do sleep 0.2; done
    export KUBECONFIG="$work/api/kubeconfig"
    secret() { kubectl -n registry-rewriter create secret docker-registry registry-credentials         --docker-server=registry.k8s-lab.dev --docker-username=ci --docker-password="$1"         --dry-run=client -o yaml | kubectl apply -f - >/dev/null; }
    show() { kubectl get secrets -A --field-selector metadata.name=registry-credentials         -o custom-columns='NAMESPACE:.metadata.namespace,MANAGED-BY:.metadata.labels.app\.kubernetes\.io/managed-by,FROM-VERSION:.metadata.annotations.registry-rewriter\.k8s-lab\.dev/source-resource-version'; }
    echo "--- the source, and three namespaces (team-c opted out)"
    kubectl create namespace registry-rewriter >/dev/null
    secret first-password
    for ns in team-a team-b team-c; do kubectl create namespace $ns >/dev/null; done
    kubectl label namespace team-c registry-rewriter.k8s-lab.dev/ignore=true >/dev/null
    ./target/debug/registry-rewriter sync-secrets --admin-listen 127.0.0.1:18090 2>"$work/sync.log" &
    controller=$!
    until curl -sf http://127.0.0.1:18090/readyz >/dev/null; do sleep 0.2; done
    echo "--- ready: the copies"
    show
    echo "--- the source rotates (resourceVersion $(kubectl -n registry-rewriter get secret registry-credentials -o jsonpath='{.metadata.resourceVersion}'))"
    secret rotated-password
    version=$(kubectl -n registry-rewriter get secret registry-credentials -o jsonpath='{.metadata.resourceVersion}')
    echo "    now resourceVersion $version"
    until [ "$(kubectl -n team-a get secret registry-credentials -o jsonpath='{.metadata.annotations.registry-rewriter\.k8s-lab\.dev/source-resource-version}')" = "$version" ]; do sleep 0.2; done
    sleep 0.5
    show
    echo "--- metrics"
    curl -s http://127.0.0.1:18090/metrics | grep '^registry_rewriter_sync'

# Build the OCI image with Buildah, from scratch and without a daemon (set IMAGE to change the name)
image:
    image/build.sh {{image}}

# Push the image `just image` built to its registry (IMAGE=...; REGISTRY_AUTH_FILE or --authfile for credentials)
image-push *args:
    buildah push {{args}} {{image}} docker://{{image}}

# Build the image from the Dockerfile with Docker or Podman (CONTAINER_TOOL=podman)
image-dockerfile:
    ${CONTAINER_TOOL:-docker} build -t {{image}} .

# Run the criterion micro-benchmarks (engine and whole review path)
bench *args:
    cargo bench --bench review {{args}}

# Load run over TLS on loopback against the release build, with a floor to compare (see docs/performance.md)
bench-load *args:
    benches/load.py {{args}}

# Pod creations through a real API server (kube-lite), with each back end installed and without (see docs/performance.md)
bench-apiserver *args:
    benches/apiserver.py {{args}}

# Fuzz each target for a time budget in seconds (cargo-fuzz; see fuzz/README.md)
fuzz seconds="60":
    fuzz/run.sh {{seconds}}
