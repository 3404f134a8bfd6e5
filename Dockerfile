# The plugin image: the fully static rollouts-guardrails binary (musl) that `make dist` built and checksummed, on
# busybox's musl variant so that the controller's init container can `cp` it into a shared volume
# (manifests/helm/values.yaml, manifests/controller/controller-patch.yaml) and `serve` can run from the same
# image (examples/grpc/deployment.yaml). Nothing in the binary needs a libc. One image for amd64 and arm64:
#
#   make dist
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/rollouts-guardrails:v0.1.0 --push .
#
# The project publishes no image: REGISTRY is yours. The binaries are the ones dist/SHA256SUMS lists.
FROM busybox:1.37-musl
ARG TARGETARCH
COPY dist/rollouts-guardrails-linux-${TARGETARCH} /rollouts-guardrails
# The controller runs as 999 (argo-rollouts' image); so do we.
USER 999:999
ENTRYPOINT ["/rollouts-guardrails"]
