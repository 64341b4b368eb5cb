# syntax=docker/dockerfile:1
# registry-rewriter: a small image with the binary alone, running as non-root.
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
ENTRYPOINT ["/usr/local/bin/registry-rewriter", "serve"]
