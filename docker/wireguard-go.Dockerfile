# Userspace WireGuard for kilo-agent's chart (wireguardGo.enabled): Debian's wireguard-go and the C
# library it links, nothing else. A TEST stand-in for the public image the chart names by default
# (masipcat/wireguard-go-docker), which cannot be pulled where there is no registry; e2e/node
# installs the chart with --set wireguardGo.image.* pointing here. No ENTRYPOINT: the chart's args
# are the whole command (`wireguard-go --foreground kilo0`), as with the public image.
#
#   npm run images -- wireguard-go
# The tag is the package's upstream version (0.0.20220316 on bookworm). The library paths are
# amd64's; on another architecture pass LIBC and LOADER.
# BASE_IMAGE: a Debian bookworm; npm run images passes its Debian base, which has PACKAGES
# already (BASE_SETUP=none: no RUN step).
ARG BASE_IMAGE=debian:bookworm-slim
# apt: install PACKAGES on BASE_IMAGE; none: BASE_IMAGE has them (this stage is then skipped).
ARG BASE_SETUP=apt
ARG PACKAGES="wireguard-go"

FROM ${BASE_IMAGE} AS base-apt
ARG PACKAGES
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

FROM ${BASE_IMAGE} AS base-none

FROM base-${BASE_SETUP} AS debian

FROM scratch
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
ARG LIBC=/lib/x86_64-linux-gnu/libc.so.6
ARG LOADER=/lib64/ld-linux-x86-64.so.2
COPY --from=debian /usr/bin/wireguard-go /usr/bin/wireguard-go
COPY --from=debian ${LIBC} ${LIBC}
COPY --from=debian ${LOADER} ${LOADER}
ENV PATH=/usr/bin
LABEL org.opencontainers.image.title="wireguard-go" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
CMD ["wireguard-go", "--version"]
