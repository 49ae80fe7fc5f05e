/**
 * `keyanchor audit …` as real processes on a SQLite store with a file witness: every command
 * that writes records signs a checkpoint of them before it exits; `audit key`, `verify --key`
 * (and exit 3 naming the record an edit broke), `checkpoint` to the witness and `verify
 * --against` the witness file, `search` as JSON and text, `tail` resumed from a cursor file and
 * `tail --follow` until SIGTERM, `prune` behind a witnessed checkpoint, and `import` of an old
 * JSON-lines trail that a checkpoint then sweeps.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_CLI, ROOT, runKeyanchor } from '../helpers/processes.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World;
let config: string;
const f = (name: string) => path.join(w.dir, name);
const keyanchor = (...args: string[]) => runKeyanchor(['--config', config, ...args]);

beforeAll(async () => {
  w = await makeWorld();
  config = f('config.json');
  writeFileSync(config, JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, dev: { enabled: false }, log: { level: 'silent' }, audit: { witnesses: [{ kind: 'file', path: 'witness.jsonl' }] } }));
  expect((await keyanchor('keys', 'create', '--init', APP_KEY)).code).toBe(0);
  for (let i = 0; i < 3; i++) expect((await keyanchor('keys', 'rotate', APP_KEY)).code).toBe(0);
});
afterAll(() => w?.cleanup());

const jsonLines = (text: string) => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('keyanchor audit', () => {
  it('key, verify --key: every command\'s records are covered by its own checkpoint', async () => {
    const k = await keyanchor('audit', 'key', '--out', f('audit.pub'));
    expect(k.code, k.stderr).toBe(0);
    expect(readFileSync(f('audit.pub'), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const v = await keyanchor('audit', 'verify', '--key', f('audit.pub'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/: 5 record\(s\) in 4 chain\(s\), all intact \(key\.create 1, key\.rotate 3, store\.migrate 1\)\n4 checkpoint-log entries \(1–4\), every signature verified with the 1 key\(s\) given\nevery record is covered by a checkpoint\n$/);
    const noKey = await keyanchor('audit', 'verify');
    expect(noKey.stdout).toContain('signatures NOT checked (give the audit public key with --key): a rewritten trail would pass');
  });

  it('checkpoint sends to the file witness; verify --against the witness file', async () => {
    expect((await keyanchor('keys', 'disable', APP_KEY, '1')).code).toBe(0);
    const cp = await keyanchor('audit', 'checkpoint');
    expect({ code: cp.code, stdout: cp.stdout }).toEqual({ code: 0, stdout: 'nothing new to checkpoint\nwitness file:' + f('witness.jsonl') + ': 0 of 0 entries held\n' });
    // Records the witness never had (the CLI writers' own checkpoints): a checkpoint now re-signs nothing,
    // so sweep a chain written without one — an imported trail.
    const old = ['{"seq":1,"prev":"' + '0'.repeat(64) + '","time":"2020-01-01T00:00:00.000Z","event":"release","key":"old/k"}'];
    old.push(JSON.stringify({ seq: 2, prev: createHash('sha256').update(old[0]!).digest('hex'), time: '2020-01-02T00:00:00.000Z', event: 'refusal', code: 'key_unknown' }));
    writeFileSync(f('audit.jsonl'), old.join('\n') + '\n');
    const imp = await keyanchor('audit', 'import', f('audit.jsonl'));
    expect(imp.code, imp.stderr).toBe(0);
    const swept = await keyanchor('audit', 'checkpoint', '-o', 'json');
    expect(swept.code, swept.stderr).toBe(0);
    const out = JSON.parse(swept.stdout) as { entries: Array<{ text: string }>; witnesses: Array<{ witnessed: number }> };
    expect(out.entries).toHaveLength(1);
    expect(out.entries[0]!.text).toMatch(/\nchain import-[0-9a-f]{24}\nseq 2\n[^]*\nbasis sweep\n/);
    expect(out.witnesses).toEqual([{ witness: `file:${f('witness.jsonl')}`, sent: 1, witnessed: 1, failed: 0 }]);
    expect(jsonLines(readFileSync(f('witness.jsonl'), 'utf8'))).toHaveLength(1);
    const v = await keyanchor('audit', 'verify', '--key', f('audit.pub'), '--against', f('witness.jsonl'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/the store holds the witnessed checkpoint \(entry \d+\)\n$/);
  });

  it('search: by key as JSON and text, by code, paged', async () => {
    const s = await keyanchor('audit', 'search', '--key', APP_KEY, '-o', 'json');
    expect(s.code, s.stderr).toBe(0);
    const r = JSON.parse(s.stdout) as { records: Array<{ event: string; record: { actor?: string } }>; next: string | null };
    expect(r.records.map((x) => x.event)).toEqual(['key.create', 'key.rotate', 'key.rotate', 'key.rotate', 'key.state']);
    expect(r.records[0]!.record.actor).toMatch(/^cli:/);
    expect(r.next).toBeNull();
    const t = await keyanchor('audit', 'search', '--code', 'key_unknown');
    expect(t.stdout).toMatch(/^2020-01-02T00:00:00\.000Z refusal +code=key_unknown \(import-[0-9a-f]{24}:2\)\n$/);
    const p1 = JSON.parse((await keyanchor('audit', 'search', '--key', APP_KEY, '--limit', '2', '-o', 'json')).stdout) as { records: unknown[]; next: string };
    const p2 = JSON.parse((await keyanchor('audit', 'search', '--key', APP_KEY, '--limit', '2', '--after', p1.next, '-o', 'json')).stdout) as { records: unknown[] };
    expect([...p1.records, ...p2.records]).toEqual(r.records.slice(0, 4));
    const bad = await keyanchor('audit', 'search', '--since', 'yesterday');
    expect({ code: bad.code, stderr: bad.stderr }).toEqual({ code: 2, stderr: 'keyanchor: --since: "yesterday" is neither an ISO 8601 time (2030-01-01T00:00:00Z) nor an age like 24h\n' });
  });

  it('tail resumes from its cursor file; --follow prints new records as they commit and stops on SIGTERM', async () => {
    const first = await keyanchor('audit', 'tail', '--cursor-file', f('cursor'));
    expect(first.code, first.stderr).toBe(0);
    const lines = jsonLines(first.stdout);
    expect(lines.map((l) => l.event)).toEqual(['store.migrate', 'key.create', 'key.rotate', 'key.rotate', 'key.rotate', 'key.state', 'release', 'refusal']);
    expect(readFileSync(f('cursor'), 'utf8')).toBe(`${String(lines.at(-1)!.cursor)}\n`);
    expect((await keyanchor('audit', 'tail', '--cursor-file', f('cursor'))).stdout).toBe('');

    const follower = spawn(process.execPath, [BROKER_CLI, '--config', config, 'audit', 'tail', '--follow', '--interval', '50', '--cursor-file', f('cursor')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follower.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((r) => follower.on('close', (code) => r(code)));
    expect((await keyanchor('keys', 'enable', APP_KEY, '1')).code).toBe(0);
    for (let i = 0; i < 200 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    follower.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(jsonLines(out).map((l) => [l.event, (l.record as { state?: string }).state])).toEqual([['key.state', 'enabled']]);
  });

  it('an edited record: verify exits 3 naming the chain and record', async () => {
    const db = new Database(path.join(w.stateDir, 'keyanchor.db'));
    const { chain_id: chain, seq } = db.prepare("SELECT chain_id, seq FROM audit WHERE event = 'key.state' ORDER BY pos LIMIT 1").get() as { chain_id: string; seq: number };
    const saved = db.prepare('SELECT body FROM audit WHERE chain_id = ? AND seq = ?').get(chain, seq) as { body: string };
    db.prepare('UPDATE audit SET body = REPLACE(body, \'"disabled"\', \'"enabled"\') WHERE chain_id = ? AND seq = ?').run(chain, seq);
    const v = await keyanchor('audit', 'verify', '--key', f('audit.pub'));
    expect({ code: v.code, stderr: v.stderr }).toEqual({ code: 3, stderr: `keyanchor: ${path.join(w.stateDir, 'keyanchor.db')}: chain ${chain} breaks at record ${seq}: its content does not match its hash\n` });
    const json = await keyanchor('audit', 'verify', '--key', f('audit.pub'), '-o', 'json');
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ intact: false, chains: expect.arrayContaining([expect.objectContaining({ chain, brokenAt: seq })]) });
    db.prepare('UPDATE audit SET body = ? WHERE chain_id = ? AND seq = ?').run(saved.body, chain, seq);
    db.close();
    expect((await keyanchor('audit', 'verify', '--key', f('audit.pub'))).code).toBe(0);
  });

  it('prune retires up to the witnessed checkpoint; what remains verifies against the witness', async () => {
    const p = await keyanchor('audit', 'prune', '--before', '0s', '-o', 'json');
    expect(p.code, p.stderr).toBe(0);
    const r = JSON.parse(p.stdout) as { records: number; chains: number; retiredThrough: number };
    expect(r.records).toBeGreaterThan(0);
    const v = await keyanchor('audit', 'verify', '--key', f('audit.pub'), '--against', f('witness.jsonl'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain(`pruned: entries up to ${r.retiredThrough} retired by the anchor at entry`);
    const none = await keyanchor('audit', 'prune', '--before', '2000-01-01T00:00:00Z');
    expect({ code: none.code, stderr: none.stderr }).toEqual({ code: 1, stderr: 'keyanchor: nothing retired: no checkpoint signed before 2000-01-01T00:00:00.000Z has been witnessed (a file or webhook witness confirms it; or give one with --against)\n' });
  });
});
