# The runtime of the node-only images (node-app, tower-proxy, tower-agent and connector-init
# build FROM it): distroless-like, a stage FROM scratch with only node, the shared libraries it
# links (ldd /usr/local/bin/node: libc, libm, libdl, libpthread, libstdc++, libgcc_s and the loader),
# the CA certificates, /etc/passwd, /etc/group and /etc/nsswitch.conf with the user nonroot (65532),
# and a /tmp that user can write. Node sits at /nodejs/bin/node as in
# gcr.io/distroless/nodejs20-debian12, so the app images build on either.
#
# npm run images builds it from its Debian base, which has the packages already (no RUN step):
#   --build-arg BASE_IMAGE=localhost/knet/debian:<key> --build-arg BASE_SETUP=none
# With docker, from the repository root, the default base gets PACKAGES with apt-get first:
#   docker build -f docker/node-runtime.Dockerfile -t knet/node-runtime:dev .
# BASE_IMAGE: Debian bookworm with node 20 at /usr/local/bin/node (x86_64).
ARG BASE_IMAGE=node:20-bookworm-slim
# apt: install PACKAGES on BASE_IMAGE; none: BASE_IMAGE has them (this stage is then skipped).
ARG BASE_SETUP=apt
ARG PACKAGES="ca-certificates"

FROM ${BASE_IMAGE} AS base-apt
ARG PACKAGES
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

FROM ${BASE_IMAGE} AS base-none

FROM base-${BASE_SETUP} AS debian

FROM scratch
COPY --from=debian /usr/local/bin/node /nodejs/bin/node
COPY --from=debian \
     /lib/x86_64-linux-gnu/libc.so.6 \
     /lib/x86_64-linux-gnu/libm.so.6 \
     /lib/x86_64-linux-gnu/libdl.so.2 \
     /lib/x86_64-linux-gnu/libpthread.so.0 \
     /lib/x86_64-linux-gnu/libstdc++.so.6 \
     /lib/x86_64-linux-gnu/libgcc_s.so.1 \
     /lib/x86_64-linux-gnu/
COPY --from=debian /lib64/ld-linux-x86-64.so.2 /lib64/
COPY --from=debian /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY docker/rootfs/etc/ /etc/
# COPY cannot make a directory 1777; owned by nonroot, /tmp is writable for the images' user.
COPY --from=debian --chown=65532:65532 /tmp/ /tmp/
USER 65532:65532
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
