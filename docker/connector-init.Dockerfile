# connector-init: node-app.Dockerfile plus a static busybox, which connector-init copies into the
# pod's handoff dir as the launcher's shell (the vendor's connector image need not have one) and
# uses for mkfifo (distroless has no coreutils). Build the bundle first:
#   npx nx build @knet/connector-init
#   docker build -f docker/connector-init.Dockerfile -t knet/connector-init:dev .
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot
FROM debian:12-slim AS busybox
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/*

FROM ${BASE_IMAGE}
COPY --from=busybox /bin/busybox /bin/busybox
COPY dist/apps/connector-init/ /app/
USER 65532:65532
ENV NODE_ENV=production
EXPOSE 9090
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "/app/main.js"]
