/**
 * Summarises a V8 CPU profile (`.cpuprofile`, from `node --cpu-prof` or the bench's probe) of the
 * broker by what the time was spent on. Each sample goes to the first rule that matches its stack,
 * walking from the running function towards the root: library and runtime frames first (GC, zod,
 * JSON, pino, express, TLS/socket), then the innermost keyanchor source file. Helpers shared by
 * several steps (base64url, JOSE segments and errors, the LRU, the clock) are skipped so that their
 * caller decides.
 *
 *   node dist/test/bench/profile.js FILE.cpuprofile     prints the table
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame { functionName: string; url: string }
interface ProfileNode { id: number; callFrame: CallFrame; parent?: number; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export const NATIVE = 'native code outside JS (TLS decryption on read, HTTP parsing, libuv)';
const EXPRESS = /\/node_modules\/(express|router|body-parser|raw-body|iconv-lite|content-type|type-is|media-typer|mime-types|on-finished|finalhandler|send|statuses|depd|http-errors|parseurl|path-to-regexp|qs|side-channel|encodeurl|escape-html|etag|fresh|vary|content-disposition|cookie|proxy-addr|forwarded|accepts|negotiator|range-parser|bytes|unpipe|ee-first|debug|ms|merge-descriptors|setprototypeof|safe-buffer|call-bound|get-intrinsic|dunder-proto|es-errors|function-bind|has-symbols|gopd|hasown|math-intrinsics|object-inspect|es-object-atoms|get-proto|call-bind-apply-helpers|es-define-property|router|is-promise)\//;

/** [test, category]: the first match from the leaf upwards decides; `null` skips the frame. */
const RULES: Array<[(f: CallFrame) => boolean, string | null]> = [
  [(f) => f.functionName === '(garbage collector)', 'GC (main thread)'],
  [(f) => f.functionName === '(program)', NATIVE],
  [(f) => f.functionName === '(idle)', 'idle'],
  [(f) => /\/node_modules\/zod\//.test(f.url) || (f.url === '' && /^(parse|stringify)$/.test(f.functionName)) || /\/src\/jose\/json\.js$/.test(f.url), 'JSON / zod'],
  [(f) => /\/node_modules\/(pino|pino-std-serializers|sonic-boom|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free|thread-stream|safe-stable-stringify)\//.test(f.url) || /\/src\/log\.js$/.test(f.url), 'logging (pino)'],
  [(f) => /\/src\/(jose\/(base64url|segments|errors)|lru|clock)\.js$/.test(f.url), null],
  [(f) => /\/src\/(jose\/(jwe|primitives|p256)|custody\/|keys\/keyService)/.test(f.url), 'JWE / custody release'],
  [(f) => /\/src\/(jose\/(jws|signatures)|attestation\/evidence)\.js$/.test(f.url), 'evidence parse + signature'],
  [(f) => /\/src\/(attestation\/nodeChain|pki)\.js$/.test(f.url), 'node chain'],
  [(f) => /\/src\/(attestation\/workload|measurement\/)/.test(f.url), 'publisher signature (cached)'],
  [(f) => /\/src\/policy\//.test(f.url), 'policy evaluate'],
  [(f) => /\/src\/(attestation\/nonces|store\/)/.test(f.url), 'state store (the release transaction)'],
  [(f) => /\/src\/(audit\/|keys\/lockFile)/.test(f.url), 'audit append'],
  [(f) => /\/src\/keys\//.test(f.url), 'keystore'],
  [(f) => /^node:(_tls_|tls|internal\/tls)/.test(f.url), 'TLS / socket I/O (JS side)'],
  // Sockets in node:net: only a Socket's own methods (a lock file's bind/close climbs to its caller).
  [(f) => /^node:internal\/stream_base_commons/.test(f.url) || (f.url === 'node:net' && /^Socket\./.test(f.functionName)), 'TLS / socket I/O (JS side)'],
  [(f) => EXPRESS.test(f.url) || /^node:(_http_|http$|internal\/http)/.test(f.url) || /\/src\/(http\/|app\.js|errors\.js)/.test(f.url), 'HTTP / express'],
  [(f) => /\/src\/release\.js$/.test(f.url), 'release pipeline (its own code)'],
];

function categoryOf(stack: CallFrame[]): string {
  for (const frame of stack) {
    for (const [test, category] of RULES) {
      if (!test(frame)) continue;
      if (category === null) break;
      return category;
    }
  }
  return 'other';
}

export interface ProfileSummary {
  /** ms of main-thread time in the profile, idle excluded. */
  busyMs: number;
  idleMs: number;
  /** [category, ms], largest first. */
  categories: Array<[string, number]>;
  /** The functions with the most self time: [name (file), category, ms]. */
  top: Array<[string, string, number]>;
}

export function summarise(p: CpuProfile, topN = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  for (const n of p.nodes) for (const c of n.children ?? []) byId.get(c)!.parent = n.id;
  const stackOf = (id: number): CallFrame[] => {
    const s: CallFrame[] = [];
    for (let n = byId.get(id); n; n = n.parent === undefined ? undefined : byId.get(n.parent)) s.push(n.callFrame);
    return s;
  };
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  for (let i = 0; i < p.samples.length; i++) {
    const us = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + Math.max(0, us));
  }
  const cats = new Map<string, number>();
  const fns = new Map<string, [string, number]>();
  for (const [id, us] of selfUs) {
    if (us === 0) continue;
    const stack = stackOf(id);
    const cat = categoryOf(stack);
    cats.set(cat, (cats.get(cat) ?? 0) + us / 1000);
    const f = stack[0]!;
    const name = `${f.functionName || '(anonymous)'}${f.url ? ` (${f.url.replace(/^.*\/(node_modules|dist)\//, '')})` : ''}`;
    const key = `${name}\u0000${cat}`;
    fns.set(key, [cat, (fns.get(key)?.[1] ?? 0) + us / 1000]);
  }
  const idleMs = cats.get('idle') ?? 0;
  cats.delete('idle');
  const busyMs = [...cats.values()].reduce((s, v) => s + v, 0);
  return {
    busyMs,
    idleMs,
    categories: [...cats].sort((a, b) => b[1] - a[1]),
    top: [...fns].filter(([, [cat]]) => cat !== 'idle').map(([key, [c, ms]]): [string, string, number] => [key.split('\u0000')[0]!, c, ms]).sort((a, b) => b[2] - a[2]).slice(0, topN),
  };
}

export function formatSummary(s: ProfileSummary, usPerRelease?: number): string[] {
  const pct = (ms: number) => ((ms / s.busyMs) * 100).toFixed(1);
  const per = (ms: number) => (usPerRelease === undefined ? '' : ` | ${((ms / s.busyMs) * usPerRelease).toFixed(0)}`);
  return [
    `| category | % of main-thread CPU${usPerRelease === undefined ? '' : ' | µs per release'} |`,
    `| --- | ---:${usPerRelease === undefined ? '' : ' | ---:'} |`,
    ...s.categories.map(([c, ms]) => `| ${c} | ${pct(ms)}${per(ms)} |`),
    '',
    `top ${s.top.length} functions by self time:`,
    ...s.top.map(([name, cat, ms]) => `  ${pct(ms).padStart(5)} %  ${name}  [${cat}]`),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/test/bench/profile.js FILE.cpuprofile\n');
    process.exit(2);
  }
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  process.stdout.write(`${(s.busyMs / 1000).toFixed(2)} s busy, ${(s.idleMs / 1000).toFixed(2)} s idle on the main thread\n${formatSummary(s).join('\n')}\n`);
}
