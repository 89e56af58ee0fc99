# connector-init: node-app.Dockerfile plus a static busybox, which connector-init copies into the
# pod's handoff dir as the launcher's shell (the vendor's connector image need not have one) and
# uses for mkfifo (the node runtime has no coreutils).
#
#   npm run images -- connector-init       (also builds ghcr.io/knet/busybox, docker/busybox.Dockerfile)
# or with docker, from the repository root:
#   npx nx build @knet/connector-init
#   docker build -f docker/connector-init.Dockerfile -t ghcr.io/knet/connector-init:dev .
#
# BASE_IMAGE: as in node-app.Dockerfile. BUSYBOX_IMAGE: an image with a static busybox at
# /bin/busybox (npm run images passes ghcr.io/knet/busybox, Debian's busybox-static).
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot
ARG BUSYBOX_IMAGE=busybox:1.36.1-musl

FROM ${BUSYBOX_IMAGE} AS busybox

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY --from=busybox /bin/busybox /bin/busybox
COPY dist/apps/connector-init/ /app/
USER 65532:65532
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="connector-init" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 9090
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "/app/main.js"]
