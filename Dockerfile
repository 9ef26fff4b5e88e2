# syntax=docker/dockerfile:1
# The WeChat dialog server as an image: `docker build -t wechat-dialog .`, or `docker compose up`
# (compose.yaml). See docs/deployment.md. test/deploy/dockerfile.test.ts runs these steps without a
# Docker daemon: its interpreter (test/support/dockerfile.ts) fails on an instruction it does not
# know, so extend it when you use a new one here.

# Build stage: every dependency (TypeScript included), then compile src/ and dialogs/ into dist/.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig*.json ./
COPY src ./src
COPY dialogs ./dialogs
RUN npm run build

# Runtime stage: production dependencies and the compiled dist/ only, run by the unprivileged
# `node` user of the base image. Settings come from the environment (WECHAT_TOKEN is required).
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
# Healthy when the server answers a signed GET handshake, as WeChat sends when the URL is saved.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/src/cli/main.js", "healthcheck"]
CMD ["node", "dist/src/cli/main.js", "serve", "--router", "dist/dialogs/router.js"]
