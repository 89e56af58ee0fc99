# Image for an app that needs only Node.js: gateway-webhook, capi-packet-manager and the capi-packet
# CLI (whose build puts the clusterctl bundle next to main.js). The whole dist/apps/$APP/ folder is
# copied: esbuild puts native add-ons and the source map next to main.js.
#
#   npm run images -- gateway-webhook      (bundle, base, image and its checks: docker/README.md)
# or with docker, from the repository root:
#   npx nx build @knet/gateway-webhook
#   docker build -f docker/node-app.Dockerfile --build-arg APP=gateway-webhook -t ghcr.io/knet/gateway-webhook:dev .
#
# BASE_IMAGE: node at /nodejs/bin/node and the user nonroot (65532). npm run images passes its node
# runtime (node-runtime.Dockerfile); the default is the public image that runtime imitates.
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BASE_IMAGE}
ARG APP
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY dist/apps/${APP}/ /app/
USER 65532:65532
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="${APP}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "/app/main.js"]
