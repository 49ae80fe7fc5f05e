/**
 * A missing or different software KEK is never silently replaced (real CLI processes): with keys
 * in the store, deleting `kek.bin` makes every command and `serve` (dev mode on or off) refuse,
 * say what is missing and create nothing; a KEK file of another KEK is refused the same way;
 * restoring the right file brings everything back. A KEK is made only for a new, empty store.
 */
import { copyFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEK_FILE } from '../../src/custody/softwareKek.js';
import { runKeyanchor } from '../helpers/processes.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World;
let config: string;
let devConfig: string;
let kekId: string;

beforeAll(async () => {
  w = await makeWorld();
  config = path.join(w.dir, 'config.json');
  devConfig = path.join(w.dir, 'dev.json');
  const base = { stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' } };
  writeFileSync(config, JSON.stringify({ ...base, dev: { enabled: false } }));
  writeFileSync(devConfig, JSON.stringify({ ...base, dev: { enabled: true } }));
  const created = await runKeyanchor(['--config', config, 'keys', 'create', '--init', APP_KEY]);
  expect(created.code, created.stderr).toBe(0);
  const status = await runKeyanchor(['--config', config, 'store', 'status']);
  kekId = (JSON.parse(status.stdout) as { kekId: string }).kekId;
  expect(kekId).toMatch(/^sha256:[0-9a-f]{16}$/);
});
afterAll(() => w?.cleanup());

const kek = () => path.join(w.stateDir, KEK_FILE);

describe('a store with keys and its software KEK', () => {
  it('without kek.bin every command and serve refuse, name what is missing, and create nothing', async () => {
    copyFileSync(kek(), path.join(w.dir, 'kek.backup'));
    rmSync(kek());
    const files = readdirSync(w.stateDir).sort();
    const missing = `kek_missing: the software KEK ${kek()} is missing, and the store's keys are wrapped by KEK ${kekId}: restore kek.bin from backup (nothing was created)`;
    for (const args of [['keys', 'create', 'team/new'], ['keys', 'rotate', APP_KEY], ['keys', 'list'], ['keys', 'show', APP_KEY], ['keys', 'export'], ['keys', 'create', '--init', 'team/new']]) {
      const r = await runKeyanchor(['--config', config, ...args]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, args.join(' ')).toEqual({ code: 1, stdout: '', stderr: `keyanchor: ${missing}\n` });
    }
    for (const c of [config, devConfig]) {
      const r = await runKeyanchor(['--config', c, 'serve'], { KEYANCHOR_PORT: '0' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`keyanchor: refusing to start: ${missing}`);
    }
    expect(existsSync(kek())).toBe(false);
    // Dev mode may have made its TLS and demo material before refusing; no KEK, no key.
    expect(readdirSync(w.stateDir).filter((f) => !['tls', 'dev'].includes(f)).sort()).toEqual(files);
    copyFileSync(path.join(w.dir, 'kek.backup'), kek());
  });

  it('another KEK in kek.bin is refused with both KEK ids; the right one restored, all is well', async () => {
    copyFileSync(kek(), path.join(w.dir, 'kek.backup'));
    writeFileSync(kek(), Buffer.alloc(32, 9), { mode: 0o600 });
    for (const args of [['keys', 'rotate', APP_KEY], ['keys', 'list']]) {
      const r = await runKeyanchor(['--config', config, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^keyanchor: kek_mismatch: the keys in .* are wrapped by KEK ${kekId}, but .*KEK sha256:[0-9a-f]{16}`));
    }
    copyFileSync(path.join(w.dir, 'kek.backup'), kek());
    const list = await runKeyanchor(['--config', config, 'keys', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ name: string }>).map((k) => k.name)).toEqual([APP_KEY]);
    const rotated = await runKeyanchor(['--config', config, 'keys', 'rotate', APP_KEY]);
    expect(rotated.code, rotated.stderr).toBe(0);
  });
});
