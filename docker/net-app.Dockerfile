# Image for an app that programs the network: kilo-agent, kgctl (connect), and pod-gateway's
# gateway-init, gateway-sidecar, client-init, client-sidecar. The whole dist/apps/$APP/ folder is
# copied: esbuild puts native add-ons and the source map next to main.js.
#   iproute2: ip, bridge · iptables: iptables(-restore), ip6tables(-restore) · iputils-ping: the
#   pod-gateway clients' gateway check · procps: sysctl (gateway-init's net.ipv4.ip_forward) ·
#   wireguard-tools: wg (kilo-agent, kgctl)
#
#   npm run images -- gateway-init         (bundle, base, image and its checks: docker/README.md)
# or with docker, from the repository root:
#   npx nx build @knet/gateway-init
#   docker build -f docker/net-app.Dockerfile --build-arg APP=gateway-init -t ghcr.io/knet/gateway-init:dev .
#
# BASE_IMAGE: Debian bookworm with node 20 at /usr/local/bin/node. npm run images passes its Debian
# base, which has PACKAGES already (BASE_SETUP=none: no RUN step); with the default base, apt-get
# installs them first.
ARG BASE_IMAGE=node:20-bookworm-slim
# apt: install PACKAGES on BASE_IMAGE; none: BASE_IMAGE has them (this stage is then skipped).
ARG BASE_SETUP=apt
ARG PACKAGES="iproute2 iptables iputils-ping procps wireguard-tools"

FROM ${BASE_IMAGE} AS base-apt
ARG PACKAGES
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

FROM ${BASE_IMAGE} AS base-none

FROM base-${BASE_SETUP}
ARG APP
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY dist/apps/${APP}/ /app/
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="${APP}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# These apps need NET_ADMIN (and run as root inside the pod's network namespace); the charts grant
# exactly the capabilities each one needs and drop the rest.
ENTRYPOINT ["node", "--enable-source-maps", "/app/main.js"]
