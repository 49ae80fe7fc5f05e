#!/usr/bin/env node
// Runs the compiled CLI; build first with `npm run build` at the repository root.
import '../../dist/attest-agent/src/main.js';
