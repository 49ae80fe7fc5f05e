# attest-agent, installed from its own package (npm pack): one bundled file, no dependencies.
# Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t attest-agent:0.1.0 .
# A workload image takes the agent from it (see deploy/kubernetes/workload.yaml):
#   COPY --from=attest-agent:0.1.0 /usr/local/lib/node_modules/attest-agent /usr/local/lib/node_modules/attest-agent
#   RUN ln -s ../lib/node_modules/attest-agent/bin/attest-agent.js /usr/local/bin/attest-agent

# ---- build: pack the agent (esbuild bundles it in `prepack`) -----------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY attest-agent/package.json attest-agent/
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild esbuild
COPY LICENSE tsconfig.json ./
COPY src/protocol.ts src/
COPY attest-agent attest-agent
RUN cd attest-agent && npm pack --pack-destination /tmp

# ---- run: Node and the installed package, nothing else -----------------------------------------
FROM node:20-bookworm-slim
COPY --from=build /tmp/attest-agent-*.tgz /tmp/
RUN npm install -g --offline --no-audit --no-fund /tmp/attest-agent-*.tgz && rm /tmp/attest-agent-*.tgz \
 && groupadd --system --gid 10002 attest-agent && useradd --system --uid 10002 --gid attest-agent --no-create-home --shell /usr/sbin/nologin attest-agent
# Non-root by default (measure, fetch). `exec --user` starts the workload under another uid, which
# takes root or CAP_SETUID+CAP_SETGID: the Kubernetes example runs this container as uid 0 with
# every capability dropped but CHOWN, SETUID and SETGID, and the workload as uid 10001.
USER 10002:10002
ENTRYPOINT ["attest-agent"]
CMD ["--help"]
