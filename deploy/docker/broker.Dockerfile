# The keyanchor broker. Build from the repository root:
#   docker build -f deploy/docker/broker.Dockerfile -t keyanchor:0.1.0 .
# Run with the config, policies, TLS pair and state mounted (see docs/deployment.md):
#   docker run -p 8443:8443 -v /etc/keyanchor:/etc/keyanchor:ro -v keyanchor-state:/var/lib/keyanchor keyanchor:0.1.0

# ---- build: compilers for pkcs11js, dev dependencies, TypeScript ------------------------------
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY attest-agent/package.json attest-agent/
# `npm ci` would run `prepare` (the build) before the sources are here: build explicitly below.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild pkcs11js esbuild
COPY tsconfig.json ./
COPY src src
COPY attest-agent attest-agent
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/attest-agent

# ---- run: Node, the compiled broker and its runtime dependencies; no compiler, no npm cache -----
FROM node:20-bookworm-slim
RUN groupadd --system --gid 10001 keyanchor \
 && useradd --system --uid 10001 --gid keyanchor --home-dir /var/lib/keyanchor --no-create-home --shell /usr/sbin/nologin keyanchor \
 && mkdir -p /var/lib/keyanchor /etc/keyanchor && chown keyanchor:keyanchor /var/lib/keyanchor && chmod 0700 /var/lib/keyanchor
WORKDIR /opt/keyanchor
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY LICENSE ./
ENV NODE_ENV=production
USER 10001:10001
EXPOSE 8443
VOLUME ["/var/lib/keyanchor"]
ENTRYPOINT ["node", "/opt/keyanchor/dist/src/cli/main.js"]
CMD ["--config", "/etc/keyanchor/config.yaml", "serve"]
