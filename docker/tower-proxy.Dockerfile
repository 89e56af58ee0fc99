# tower-proxy: the host cluster's end of the tower tunnels (charts/tower-proxy).
#   npm run images -- tower-proxy        (bundle, base, image and its checks: docker/README.md)
# or with docker, from the repository root:
#   npx nx build @knet/tower-proxy
#   docker build -f docker/tower-proxy.Dockerfile -t ghcr.io/knet/tower-proxy:dev .
# esbuild copies native add-ons (*.node) next to main.js and main.js loads them by relative path,
# so the whole output folder is copied, not main.js alone.
# BASE_IMAGE: node at /nodejs/bin/node and the user nonroot (65532). npm run images passes its node
# runtime (node-runtime.Dockerfile); the default is the public image that runtime imitates.
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY dist/apps/tower-proxy/ /app/
# 65532 = distroless "nonroot"; the chart runs it with runAsNonRoot, a read-only root filesystem and no capabilities.
USER 65532:65532
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="tower-proxy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The agent endpoint (/v1/tunnel) and /healthz, /readyz, /metrics, /version. The per-cluster
# listeners (--port-range, default 6000-7000 and 16000-17000) are reached through the Services
# mc-<cluster>, which target the pod's ports directly.
EXPOSE 8080
# --no-concurrent-array-buffer-sweeping: a tunnel allocates a Buffer per SSH packet and socket read.
# Swept concurrently, freed ArrayBuffers stay counted as external memory for a while, and V8 answers
# that pressure with a full mark-compact ~12 times a second during a bulk stream (about a third of
# the proxy's CPU went to GC). Swept at once, that pressure seldom builds: the
# tunnel needs 2.5-4.4 s of CPU per GiB instead of 5.3 (npm run bench -- tower; figures in
# bench/tower/README.md). Node refuses V8 flags in NODE_OPTIONS, so it is here; tests
# and benches read it from this line (shippedNodeFlags).
# No --enable-source-maps: loading the bundle's map costs ~35 MiB of RSS in the proxy and ~21 MiB
# in the agent (measured by the bench); stack traces still name the bundle's functions, and
# NODE_OPTIONS=--enable-source-maps (allowed there) turns TypeScript positions on when needed.
ENTRYPOINT ["/nodejs/bin/node", "--no-concurrent-array-buffer-sweeping", "/app/main.js"]
