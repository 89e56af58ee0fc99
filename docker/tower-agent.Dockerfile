# tower-agent: a member cluster's end of the tower tunnel (charts/tower-agent).
#   npm run images -- tower-agent        (bundle, base, image and its checks: docker/README.md)
# or with docker, from the repository root:
#   npx nx build @knet/tower-agent
#   docker build -f docker/tower-agent.Dockerfile -t ghcr.io/knet/tower-agent:dev .
# esbuild copies native add-ons (*.node) next to main.js and main.js loads them by relative path,
# so the whole output folder is copied, not main.js alone.
# BASE_IMAGE: node at /nodejs/bin/node and the user nonroot (65532). npm run images passes its node
# runtime (node-runtime.Dockerfile); the default is the public image that runtime imitates.
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY dist/apps/tower-agent/ /app/
# 65532 = distroless "nonroot"; the agent needs no privileges at all (it only dials out).
USER 65532:65532
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="tower-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# /healthz, /readyz (ready while connected) and /metrics.
EXPOSE 8081
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
