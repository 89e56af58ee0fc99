# TEST STAND-IN for the vendor's connector image (twingate/connector), which cannot be pulled here.
# Never a chart default: only e2e/node/test/connector.test.ts installs charts/connector with it
# (connector.image.repository=ghcr.io/knet/fake-connector). It provides what the chart's connector
# container needs from the vendor image:
#   /connectord    connector.entrypoint, exec'd by connector-init's launcher with the token pair in
#                  its environment: runs libs/testing/assets/fake-connector.mjs, which heartbeats
#                  the fake tenant (FAKE_CONNECTOR_TENANT_URL, from connector.env) with that pair;
#   /connectorctl  `health`, the chart's readiness and liveness exec probes: exit 0 while the
#                  heartbeats are accepted.
# Both are node scripts (#!/nodejs/bin/node): the node runtime has no shell.
#
#   npm run images -- fake-connector
# or with docker, from the repository root:
#   docker build -f docker/fake-connector.Dockerfile -t ghcr.io/knet/fake-connector:test .
#
# BASE_IMAGE: node at /nodejs/bin/node and the user nonroot (65532), as in node-app.Dockerfile.
ARG BASE_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG SOURCE=https://github.com/knet/knet
COPY libs/testing/assets/fake-connector.mjs /fake-connector/fake-connector.mjs
COPY libs/testing/assets/fake-connector-image/connectord libs/testing/assets/fake-connector-image/connectorctl /
USER 65532:65532
# The chart mounts an emptyDir at /var/run/twingate (the vendor's /connectorctl needs it writable).
ENV FAKE_CONNECTOR_HEALTH_FILE=/var/run/twingate/fake-connector-health
LABEL org.opencontainers.image.title="fake-connector" \
      org.opencontainers.image.description="TEST stand-in for twingate/connector: heartbeats a fake Twingate tenant; never for production" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/connectord"]
