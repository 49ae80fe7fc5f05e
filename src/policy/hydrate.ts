/**
 * From the plain-data policy (compile.ts) to the Policy the broker uses: certificates and keys
 * parsed, digest sets built, the index registered. Written as steps that yield between chunks,
 * so the running broker can build a 10,000-entry policy on its event loop a few milliseconds at
 * a time (`hydrateAsync`), while the CLI builds it in one go (`hydrate`).
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { CompiledPolicy, SoftwareData } from './compile.js';
import { parseCaCertificate } from './material.js';
import { registerIndex, SoftwareIndexBuilder } from './policyIndex.js';
import type { NodeCA, Policy, Publisher, Software } from './types.js';

/** How many certificates or keys are parsed between two yields. */
const MATERIAL_CHUNK = 25;

function* steps(c: CompiledPolicy): Generator<void, Policy> {
  const nodeCAs = new Map<string, NodeCA>();
  const publishers = new Map<string, Publisher>();
  let n = 0;
  for (const ca of c.nodeCAs) {
    nodeCAs.set(ca.name, { name: ca.name, ...parseCaCertificate(ca.pem) });
    if (++n % MATERIAL_CHUNK === 0) yield;
  }
  for (const p of c.publishers) {
    publishers.set(p.name, p.kind === 'key' ? p : { name: p.name, kind: 'ca', ca: parseCaCertificate(p.pem).cert, ...(p.subjects ? { subjects: p.subjects } : {}) });
    if (++n % MATERIAL_CHUNK === 0) yield;
  }
  yield;
  const software: Software[] = [];
  const index = new SoftwareIndexBuilder();
  for (const chunk of c.software) {
    for (const d of JSON.parse(chunk) as SoftwareData[]) {
      const sw: Software = {
        name: d.name,
        binary: { digests: new Set(d.binary.digests), publishers: d.binary.publishers },
        ...(d.image ? { image: { digests: new Set(d.image.digests), publishers: d.image.publishers } } : {}),
        grants: d.grants,
      };
      index.add(sw, software.length);
      software.push(sw);
    }
    yield;
  }
  const policy: Policy = Object.freeze({ nodeCAs, zones: c.zones, publishers, software, teams: c.teams, limits: c.limits, alarms: c.alarms, deniedNodes: c.deniedNodes, sources: c.sources });
  registerIndex(policy, index.finish(policy));
  return policy;
}

export function hydrate(c: CompiledPolicy): Policy {
  const it = steps(c);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/** Builds the policy between other work; says how long the longest slice held the event loop. */
export async function hydrateAsync(c: CompiledPolicy): Promise<{ policy: Policy; longestSliceMs: number }> {
  const it = steps(c);
  let longestSliceMs = 0;
  for (;;) {
    const t = performance.now();
    const r = it.next();
    longestSliceMs = Math.max(longestSliceMs, performance.now() - t);
    if (r.done) return { policy: r.value, longestSliceMs };
    await yieldToLoop();
  }
}
