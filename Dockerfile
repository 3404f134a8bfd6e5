# The plugin image: the fully static rollouts-guardrails binary (musl), on busybox's musl variant so that the
# controller's init container can `cp` it into a shared volume (manifests/controller/controller-patch.yaml) and
# `serve` can run from the same image (examples/grpc/deployment.yaml). Nothing in the binary needs a libc.
#
#   docker build -t ghcr.io/rollouts-guardrails/rollouts-guardrails:v0.1.0 .
#
# The binary is the one `make release-static` builds and tests/static-binary/run.sh proves.
FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --locked --release --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/rollouts-guardrails /rollouts-guardrails

FROM busybox:1.37-musl
COPY --from=build /rollouts-guardrails /rollouts-guardrails
# The controller runs as 999 (argo-rollouts' image); so do we.
USER 999:999
ENTRYPOINT ["/rollouts-guardrails"]
