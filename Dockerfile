# Dockerfile: cachemir as a container (a LAN mirror, or a sidecar). Configured entirely by
# environment variables (CACHEMIR_UPSTREAM, CACHEMIR_PROFILE, CACHEMIR_LISTEN, ... see README.md).

# Build stage: compile the TypeScript with the dev dependencies.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

# Run stage: the compiled code and production dependencies only, as an unprivileged user.
FROM node:20-slim
ENV NODE_ENV=production \
    CACHEMIR_LISTEN=0.0.0.0:8080 \
    CACHEMIR_CACHE_DIR=/var/cache/cachemir
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/bin ./bin
RUN mkdir -p /var/cache/cachemir && chown node:node /var/cache/cachemir
USER node
VOLUME ["/var/cache/cachemir"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/_cachemir/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve"]
