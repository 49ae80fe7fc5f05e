#!/usr/bin/env node
// Runs the agent bundled into one file (`npm run build` in attest-agent/, run by the repository's
// build and by `npm pack`): one module to load instead of a few hundred, with every dependency
// inside it, so the installed package needs nothing else.
import '../dist/attest-agent.mjs';
