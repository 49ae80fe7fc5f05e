/**
 * `keyanchor store migrate|status` (real processes, a SQLite store): migrate is idempotent, status
 * shows the schema and the KEK identity, and a store whose schema is newer than this keyanchor
 * knows is refused by every command, migrate included, with nothing changed.
 */
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { runKeyanchor } from '../helpers/processes.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World;
let config: string;
beforeAll(async () => {
  w = await makeWorld();
  config = path.join(w.dir, 'config.json');
  writeFileSync(config, JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, dev: { enabled: false }, log: { level: 'silent' } }));
});
afterAll(() => w?.cleanup());

const keyanchor = (...args: string[]) => runKeyanchor(['--config', config, ...args]);
const db = () => path.join(w.stateDir, 'keyanchor.db');

describe('keyanchor store', () => {
  it('migrate creates and migrates, then says it is up to date; status shows schema and KEK', async () => {
    const first = await keyanchor('store', 'migrate');
    expect({ code: first.code, stdout: first.stdout }).toEqual({ code: 0, stdout: `${db()}: schema 0 → ${SCHEMA_VERSION}\n` });
    const again = await keyanchor('store', 'migrate');
    expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 0, stdout: `${db()}: schema ${SCHEMA_VERSION}, up to date\n` });
    const before = JSON.parse((await keyanchor('store', 'status')).stdout) as Record<string, unknown>;
    expect(before).toEqual({ kind: 'sqlite', where: db(), schema: SCHEMA_VERSION, knows: SCHEMA_VERSION, kekId: null });
    expect((await keyanchor('keys', 'create', '--init', APP_KEY)).code).toBe(0);
    const after = JSON.parse((await keyanchor('store', 'status')).stdout) as { kekId: string };
    expect(after.kekId).toMatch(/^sha256:[0-9a-f]{16}$/);
  });

  it('a schema newer than this keyanchor knows is refused by every command, migrate included', async () => {
    const d = new Database(db());
    d.prepare("UPDATE meta SET value = '99' WHERE name = 'schema_version'").run();
    d.close();
    const why = `store_schema: the store's schema 99 is newer than this broker knows (${SCHEMA_VERSION}): upgrade keyanchor before using this store`;
    for (const args of [['keys', 'list'], ['keys', 'rotate', APP_KEY], ['audit', 'verify'], ['store', 'migrate'], ['serve', '--port', '0', '--insecure-http']]) {
      const r = await keyanchor(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(why);
    }
    const d2 = new Database(db(), { readonly: true });
    expect(d2.prepare('SELECT COUNT(*) AS n FROM key_versions').get()).toEqual({ n: 1 });
    d2.close();
  });
});
