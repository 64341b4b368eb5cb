# syntax=docker/dockerfile:1
# registry-rewriter: a small image with the binary alone, running as non-root.
# `just image` builds the same image from scratch with Buildah (image/build.sh);
# tests/image.rs keeps the two recipes in step.
# Builds with docker/podman, and with Kaniko in the cluster
# (manifests/examples/kaniko-build-job.yaml).

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin registry-rewriter \
 && strip target/release/registry-rewriter

# distroless/cc: glibc and CA roots, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/registry-rewriter /usr/local/bin/registry-rewriter
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/registry-rewriter"]
CMD ["serve"]
