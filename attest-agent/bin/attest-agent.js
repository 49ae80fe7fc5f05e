#!/usr/bin/env node
// Runs the agent bundled into one file by `npm run build` at the repository root (one module to
// load instead of a few hundred: the agent starts workloads, so its start-up time matters).
import '../../dist/attest-agent.mjs';
