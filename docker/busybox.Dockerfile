# A tiny image for test pods: Debian's static busybox (busybox-static) at /bin/busybox, its applets
# as symlinks (/bin/sh, /bin/ls, /usr/bin/wget…) and /tmp; `sh` by default.
#
#   npm run images -- busybox
# stages the build context: build/busybox/ holds one symlink to /bin/busybox per path of
# `busybox --list-full`. The image's tag is busybox's version.
# BASE_IMAGE: a Debian bookworm; npm run images passes its Debian base, which has PACKAGES
# already (BASE_SETUP=none: no RUN step).
ARG BASE_IMAGE=debian:bookworm-slim
# apt: install PACKAGES on BASE_IMAGE; none: BASE_IMAGE has them (this stage is then skipped).
ARG BASE_SETUP=apt
ARG PACKAGES="busybox-static"

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
COPY --from=debian /bin/busybox /bin/busybox
COPY build/busybox/ /
COPY --from=debian /tmp/ /tmp/
LABEL org.opencontainers.image.title="busybox" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="GPL-2.0-only"
CMD ["sh"]
