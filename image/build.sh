#!/usr/bin/env bash
# The OCI image, built from scratch by Buildah with no daemon: the release
# binary, stripped, and the shared libraries `ldd` lists for it, nothing
# else (no shell, no package manager, no CA roots: the webhook makes no
# outgoing connection, and sync-secrets trusts the service account's CA).
#
#   image/build.sh IMAGE
#
# Leaves IMAGE in Buildah's local storage and target/image/registry-rewriter.tar
# (an OCI archive). Two builds of one commit give the same digest: every
# timestamp is the commit's, and nothing of the build machine goes in.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:?usage: image/build.sh IMAGE}"
out=target/image
mkdir -p "$out"

# IMAGE_BINARY: a release build already made (the tests pass theirs).
binary=${IMAGE_BINARY:-target/release/registry-rewriter}
if [ -z "${IMAGE_BINARY:-}" ]; then
  cargo build --release --locked --bin registry-rewriter
fi
strip -o "$out/registry-rewriter" "$binary"

version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
source_url=${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo registry-rewriter)}

container=$(buildah from scratch)
trap 'buildah rm "$container" >/dev/null' EXIT
buildah copy --quiet --chown 0:0 --chmod 0755 "$container" "$out/registry-rewriter" /usr/local/bin/registry-rewriter
# The dynamic loader and each library at the path the binary asks for.
for library in $(ldd "$out/registry-rewriter" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
  buildah copy --quiet --chown 0:0 --chmod 0755 "$container" "$(readlink -f "$library")" "$library"
done
buildah config \
  --user 65532:65532 \
  --entrypoint '["/usr/local/bin/registry-rewriter"]' \
  --cmd serve \
  --port 8443/tcp --port 8080/tcp \
  --workingdir / \
  --os linux --arch amd64 \
  --annotation "org.opencontainers.image.source=$source_url" \
  --annotation "org.opencontainers.image.version=$version" \
  --annotation "org.opencontainers.image.revision=$revision" \
  --annotation "org.opencontainers.image.created=$created" \
  --annotation "org.opencontainers.image.title=registry-rewriter" \
  "$container"
buildah commit --quiet --format oci --timestamp "$epoch" --identity-label=false --omit-history \
  "$container" "$image" >/dev/null
rm -f "$out/registry-rewriter.tar"
buildah push --quiet "$image" "oci-archive:$out/registry-rewriter.tar:$image"
echo "$image: $out/registry-rewriter.tar"
