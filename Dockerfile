# syntax=docker/dockerfile:1
#
# Image of the mas-reset-operator binary.
#
# The runtime base is distroless cc-debian12 because the binary is built on
# Debian 12 (bookworm) and links its glibc, and that image ships the same
# glibc, libgcc and the CA bundle, with no shell or package manager. UBI 9
# micro has an older glibc (2.34) than bookworm (2.36), so a bookworm build
# may not start there; a UBI image needs a UBI builder as well.
#
# Build: docker build -t mas-reset-operator:dev .   (or podman/buildah)

ARG RUST_VERSION=1

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# Compile the dependencies against stub sources first, so that this layer is
# reused while only the operator's own sources change.
COPY Cargo.toml Cargo.lock ./
# The test harness is a workspace member, so Cargo needs its manifest and
# sources to load the workspace, even though the image does not build it.
COPY tests/harness ./tests/harness
RUN mkdir -p src/bin \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/bin/mas-simulator.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin mas-reset-operator \
    && rm -rf src

# COPY keeps the sources' modification times, which can be older than the
# stub build, so touch them to make Cargo rebuild the operator crate.
COPY src ./src
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin mas-reset-operator

FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mas-reset-operator" \
      org.opencontainers.image.description="Kubernetes operator that resets IBM Maximo Application Suite user passwords in bulk" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

# The binary is owned by root and world-executable, so any UID can run it:
# OpenShift's restricted-v2 SCC replaces this USER with an arbitrary UID.
COPY --from=builder /build/target/release/mas-reset-operator /mas-reset-operator

# 65532 is the nonroot user of the distroless image. The operator writes no
# files, so it runs with a read-only root filesystem.
USER 65532:65532

EXPOSE 8080
ENTRYPOINT ["/mas-reset-operator"]
CMD ["run"]
