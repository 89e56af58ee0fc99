# Kubernetes' pause, the sandbox container of every pod a kubelet starts, as Kubernetes'
# build/pause/Dockerfile makes it: FROM scratch, the static binary at /pause, user 65535.
#
#   npm run images -- pause
# compiles build/pause/linux/pause.c of k8s.io/kubernetes (the version tools/kubeadm pins, from the
# Go module cache) with `gcc -Os -Wall -Werror -static -DVERSION=v<TAG>-<kubernetes version>` into
# build/pause of the build context it stages; TAG (build/pause/Makefile) is the image's tag.
FROM scratch
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY build/pause /pause
USER 65535:65535
LABEL org.opencontainers.image.title="pause" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/pause"]
