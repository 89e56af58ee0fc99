# Image for an app that needs only Node.js. Build the bundle first: npx nx build @knet/$APP
FROM gcr.io/distroless/nodejs20-debian12:nonroot
ARG APP
COPY dist/apps/${APP}/ /app/
USER 65532:65532
ENV NODE_ENV=production
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "/app/main.js"]
