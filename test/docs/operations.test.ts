/** docs/operations.md: its config example parses, and its option table names every option there is. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigSchema, parseConfig } from '../../src/config.js';
import { pkcs11ToolKekCommand } from '../../src/custody/pkcs11/kek.js';

const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

/** Every leaf option path of the config schema, e.g. `nonce.ttlSeconds`, `custody.pin`. */
function optionPaths(): string[] {
  const out: string[] = [];
  const walk = (shape: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(shape)) {
      const inner = unwrap(v);
      const sub = inner && typeof inner === 'object' && 'shape' in inner ? (inner.shape as Record<string, unknown>) : undefined;
      const options = (inner as { options?: Array<{ shape: Record<string, unknown> }> } | undefined)?.options;
      if (k === 'store' && options) {
        // A tagged union: every member's options, as `store.<name>`.
        for (const o of options) for (const name of Object.keys(o.shape)) out.push(`store.${name}`);
      } else if (sub && !['custody', 'tls'].includes(k)) walk(sub, `${prefix}${k}.`);
      else out.push(`${prefix}${k}`);
    }
  };
  walk(ConfigSchema.shape as Record<string, unknown>, '');
  return out;
}
function unwrap(v: unknown): unknown {
  let cur = v as { def?: { innerType?: unknown; schema?: unknown; in?: unknown } } | undefined;
  for (let i = 0; i < 5 && cur?.def; i++) cur = (cur.def.innerType ?? cur.def.schema ?? cur.def.in ?? cur) as typeof cur;
  return cur;
}

describe('docs/operations.md', () => {
  it('has a config example that parses', () => {
    const m = /<!-- config-example -->\n```yaml\n([\s\S]*?)```/.exec(doc);
    expect(m).not.toBeNull();
    const c = parseConfig(m![1], { file: '/etc/keyanchor/config.yaml', env: { KEYANCHOR_HSM_PIN: '1234', KEYANCHOR_DB_PASSWORD: 'pw' } });
    expect(c.custody.kind).toBe('pkcs11');
    expect(c.store.kind).toBe('postgres');
    expect(c.admin.enabled).toBe(true);
  });
  it('gives the same pkcs11-tool command for a KEK as `keyanchor hsm status` suggests', () => {
    expect(doc).toContain(`\n${pkcs11ToolKekCommand('/usr/lib/softhsm/libsofthsm2.so', 'keyanchor-kek', '01')}\n`);
    expect(doc.match(/^pkcs11-tool .*--keygen.*$/gm)).toHaveLength(1);
  });
  it('documents every option', () => {
    const paths = optionPaths();
    expect(paths.length).toBeGreaterThan(15);
    for (const p of paths) expect(doc, `option ${p}`).toMatch(new RegExp('`' + p.replace(/\./g, '\\.') + '[`.]'));
  });
});
