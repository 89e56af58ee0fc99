# tower-proxy: the host cluster's end of the tower tunnels (charts/tower-proxy).
# Build the bundle first, from the repository root:
#   npx nx build @knet/tower-proxy
#   docker build -f docker/tower-proxy.Dockerfile -t knet/tower-proxy:dev .
# esbuild copies native add-ons (*.node) next to main.js and main.js loads them by relative path,
# so the whole output folder is copied, not main.js alone.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
COPY dist/apps/tower-proxy/ /app/
# 65532 = distroless "nonroot"; the chart runs it with runAsNonRoot, a read-only root filesystem and no capabilities.
USER 65532:65532
ENV NODE_ENV=production
# The agent endpoint (/v1/tunnel) and /healthz, /readyz, /metrics, /version. The per-cluster
# listeners (--port-range, default 6000-7000 and 16000-17000) are reached through the Services
# mc-<cluster>, which target the pod's ports directly.
EXPOSE 8080
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "/app/main.js"]
