/**
 * Moving an earlier version's state into the store (real CLI processes): a state directory with
 * `keystore.json`, `audit.jsonl` and `kek.bin` as the file keystore left them. `serve` refuses it
 * until the keystore is imported; `keys import` moves every key (all or none); `audit import`
 * verifies the old chain first and refuses an edited file; the broker then releases the imported
 * key, the same bytes as before.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareCustodian } from '../../src/custody/software.js';
import { loadOrCreateSoftwareKek } from '../../src/custody/softwareKek.js';
import { toKeystoreFile } from '../../src/keys/keystoreFile.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { runKeyanchor, startBrokerProcess } from '../helpers/processes.js';
import { postJson } from '../helpers/replicas.js';
import { APP_KEY, makeEvidence, makeRecipient, makeWorld, openReleased, type World } from '../helpers/world.js';

let w: World;
let config: string;
let oldKey: Buffer;

const lineHash = (l: string) => createHash('sha256').update(l).digest('hex');

/** An audit.jsonl as the file writer made it: seq, prev = sha256 of the previous line, time, fields. */
function jsonl(records: Array<Record<string, unknown>>): string {
  let prev = '0'.repeat(64);
  return records.map((r, i) => {
    const line = JSON.stringify({ seq: i + 1, prev, time: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(), ...r });
    prev = lineHash(line);
    return line + '\n';
  }).join('');
}

beforeAll(async () => {
  w = await makeWorld();
  config = path.join(w.dir, 'config.json');
  writeFileSync(config, JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'warn' } }));
  // The old state directory: a KEK, a keystore with two versions (one destroyed), an audit file.
  const custodian = new SoftwareCustodian(loadOrCreateSoftwareKek(w.stateDir, { create: true }));
  const v1 = await custodian.generate({ name: APP_KEY, version: 1 });
  const v2 = await custodian.generate({ name: APP_KEY, version: 2 });
  const r = await makeRecipient('EC');
  oldKey = (await openReleased((await custodian.releaseTo({ name: APP_KEY, version: 2 }, v2, r.jwk as RecipientJwk)).jwe, r)).key;
  await custodian.close();
  const t = '2026-01-01T00:00:00.000Z';
  writeFileSync(path.join(w.stateDir, 'keystore.json'), JSON.stringify(toKeystoreFile('software', [
    { name: APP_KEY, createdAt: t, createdBy: 'cli:old', versions: [
      { version: 1, state: 'destroyed' as const, createdAt: t, createdBy: 'cli:old', changedAt: t, changedBy: 'cli:old' },
      { version: 2, state: 'enabled' as const, createdAt: t, createdBy: 'cli:old', wrapped: v2 },
    ] },
    { name: 'team/spare', createdAt: t, createdBy: 'cli:old', versions: [{ version: 1, state: 'disabled' as const, createdAt: t, createdBy: 'cli:old', wrapped: v1 }] },
  ]), null, 2));
  writeFileSync(path.join(w.stateDir, 'audit.jsonl'), jsonl([
    { event: 'key.create', actor: 'cli:old', key: APP_KEY, version: 1 },
    { event: 'key.rotate', actor: 'cli:old', key: APP_KEY, version: 2 },
    { event: 'release', requestId: 'r1', released: [`${APP_KEY}@2`], software: ['app'] },
  ]));
});
afterAll(() => w?.cleanup());

const keyanchor = (...args: string[]) => runKeyanchor(['--config', config, ...args]);

describe('an earlier version\'s state directory', () => {
  it('serve refuses it until the keystore is imported', async () => {
    const r = await keyanchor('serve');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`legacy_keystore: ${path.join(w.stateDir, 'keystore.json')} is a keystore of an earlier version: move it into the store with \`keyanchor keys import ${path.join(w.stateDir, 'keystore.json')}\``);
  });

  it('audit import refuses an edited file and imports nothing', async () => {
    const edited = path.join(w.dir, 'edited.jsonl');
    const text = jsonl([{ event: 'key.create', actor: 'a', key: 'x/y' }, { event: 'key.create', actor: 'b', key: 'x/z' }]).replace('"actor":"b"', '"actor":"c"');
    writeFileSync(edited, text.split('\n').reverse().join('\n'));
    await keyanchor('store', 'migrate');
    const r = await keyanchor('audit', 'import', edited);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 3, stderr: `keyanchor: ${edited}: the chain breaks at line 1 (edited, reordered or truncated); nothing imported\n` });
  });

  it('keys import moves every key; audit import verifies and copies the old trail; the key releases as before', { timeout: 60_000 }, async () => {
    const imported = await keyanchor('keys', 'import', path.join(w.stateDir, 'keystore.json'));
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toEqual({ imported: 2, keys: [APP_KEY, 'team/spare'] });
    const again = await keyanchor('keys', 'import', path.join(w.stateDir, 'keystore.json'));
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 1, stderr: `keyanchor: key_exists: key ${APP_KEY} is already in the store\n` });

    const audit = await keyanchor('audit', 'import', path.join(w.stateDir, 'audit.jsonl'));
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/: 3 record\(s\) verified and imported as chain import-[0-9a-f]{24} \(original last hash [0-9a-f]{64}\); `keyanchor audit checkpoint` signs it\n$/);
    const twice = await keyanchor('audit', 'import', path.join(w.stateDir, 'audit.jsonl'));
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/was imported before/);
    const verify = await keyanchor('audit', 'verify');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/: 5 record\(s\) in 3 chain\(s\), all intact \(key\.create 1, key\.rotate 1, keystore\.import 1, release 1, store\.migrate 1\)\n/);
    expect(verify.stdout).toContain('signatures NOT checked (give the audit public key with --key)');

    const listed = JSON.parse((await keyanchor('keys', 'list')).stdout) as Array<{ name: string; versions: Array<{ state: string }> }>;
    expect(listed.map((k) => [k.name, k.versions.map((v) => v.state)])).toEqual([[APP_KEY, ['destroyed', 'enabled']], ['team/spare', ['disabled']]]);

    // The old file stays where it was (the operator archives it); the broker now starts and releases.
    const broker = await startBrokerProcess(['--config', config, 'serve']);
    try {
      const nonce = (await postJson(`${broker.url}/v1/challenge`, {})).body.nonce as string;
      const ev = await makeEvidence(w, { nonce });
      const r = await postJson(`${broker.url}/v1/attest`, { evidence: ev.compact });
      expect(r.status).toBe(200);
      const k = (r.body.keys as Array<{ version: number; jwe: string }>)[0]!;
      expect(k.version).toBe(2);
      expect((await openReleased(k.jwe, ev.recipient)).key.equals(oldKey)).toBe(true);
    } finally {
      await broker.stop();
    }
  });
});
