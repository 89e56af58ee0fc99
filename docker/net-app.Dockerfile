# Image for an app that programs the network (ip, bridge, iptables, wg, ping, sysctl): kilo-agent, kgctl
# (connect), and pod-gateway's gateway-init, gateway-sidecar, client-init, client-sidecar.
# Build the bundle first, then the image, from the repository root:
#   npx nx build @knet/gateway-init && docker build -f docker/net-app.Dockerfile --build-arg APP=gateway-init -t knet/gateway-init:dev .
# The whole dist/apps/$APP/ folder is copied: esbuild puts native add-ons and the source map next to main.js.
#   iproute2: ip, bridge · iptables: iptables, ip6tables · iputils-ping: the pod-gateway clients' gateway
#   check · procps: sysctl (gateway-init's net.ipv4.ip_forward) · wireguard-tools: wg (kilo-agent)
FROM node:20-bookworm-slim
ARG APP
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables iputils-ping procps wireguard-tools \
 && rm -rf /var/lib/apt/lists/*
COPY dist/apps/${APP}/ /app/
ENV NODE_ENV=production
# These apps need NET_ADMIN (and run as root inside the pod's network namespace); the charts grant
# exactly the capabilities each one needs and drop the rest.
ENTRYPOINT ["node", "--enable-source-maps", "/app/main.js"]
