# Image for an app that programs the network (ip, bridge, iptables, wg).
# Build the bundle first: npx nx build @knet/$APP
FROM node:20-bookworm-slim
ARG APP
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables wireguard-tools procps \
 && rm -rf /var/lib/apt/lists/*
COPY dist/apps/${APP}/ /app/
ENV NODE_ENV=production
# These apps need NET_ADMIN (and run as root inside the pod's network namespace); the charts grant
# exactly the capabilities each one needs and drop the rest.
ENTRYPOINT ["node", "--enable-source-maps", "/app/main.js"]
