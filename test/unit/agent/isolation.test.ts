/**
 * The node-key exposure check and --user/--group resolution. `readableBy` decides from ownership and
 * mode bits along the key's real path; here the stat it reads is a stand-in (named `fakeStat`) so
 * that every owner/mode case runs without root. The real uid drop runs in test/e2e/isolation.e2e.test.ts.
 */
import type { Stats } from 'node:fs';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canSwitchUser, checkIsolation, readableBy, resolveRunAs } from '../../../attest-agent/src/isolation.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir('agent-isolation-');
afterAll(() => scratch.remove());

const keyDir = join(scratch.dir, 'etc', 'agent');
mkdirSync(keyDir, { recursive: true });
const keyFile = join(keyDir, 'node.key');
writeFileSync(keyFile, 'not a real key');
const realKey = realpathSync(keyFile);

interface Owner { uid: number; gid: number; mode: number; nlink?: number }
const ROOT_DIR: Owner = { uid: 0, gid: 0, mode: 0o755 };

/** Stand-in for statSync: every path is root-owned 0755 unless listed (the key file defaults to root 0400). */
function fakeStat(over: Record<string, Owner>) {
  return (p: string) => {
    const o = over[p] ?? (p === realKey ? { uid: 0, gid: 0, mode: 0o400 } : ROOT_DIR);
    return { uid: o.uid, gid: o.gid, mode: o.mode, nlink: o.nlink ?? 1 } as Stats;
  };
}

const workload = { uid: 1000, gid: 1000 };

describe('readableBy', () => {
  it('a root-owned 0400 key: not readable by another uid', () => {
    expect(readableBy(keyFile, workload, fakeStat({}))).toBeUndefined();
  });

  it('root reads everything', () => {
    expect(readableBy(keyFile, { uid: 0, gid: 0 }, fakeStat({}))).toMatch(/root/);
  });

  it('readable by others, or by its group when the workload has that gid', () => {
    expect(readableBy(keyFile, workload, fakeStat({ [realKey]: { uid: 0, gid: 0, mode: 0o404 } }))).toMatch(/readable by others/);
    expect(readableBy(keyFile, workload, fakeStat({ [realKey]: { uid: 0, gid: 1000, mode: 0o440 } }))).toMatch(/readable by its group/);
    expect(readableBy(keyFile, workload, fakeStat({ [realKey]: { uid: 0, gid: 2000, mode: 0o440 } }))).toBeUndefined();
  });

  it('owned by the workload, even at mode 0000 (it can chmod)', () => {
    expect(readableBy(keyFile, workload, fakeStat({ [realKey]: { uid: 1000, gid: 0, mode: 0 } }))).toMatch(/it owns/);
  });

  it('a directory above that the workload owns exposes it; one it cannot search protects it', () => {
    expect(readableBy(keyFile, workload, fakeStat({ [keyDir]: { uid: 1000, gid: 0, mode: 0o700 } }))).toMatch(new RegExp(`owns ${keyDir}`));
    const open = { [realKey]: { uid: 0, gid: 0, mode: 0o444 } };
    expect(readableBy(keyFile, workload, fakeStat({ ...open, [keyDir]: { uid: 0, gid: 0, mode: 0o700 } }))).toBeUndefined();
    expect(readableBy(keyFile, workload, fakeStat({ ...open, [keyDir]: { uid: 0, gid: 1000, mode: 0o750 } }))).toMatch(/readable by others/);
  });

  it('a key with another hard link is refused', () => {
    expect(readableBy(keyFile, workload, fakeStat({ [realKey]: { uid: 0, gid: 0, mode: 0o400, nlink: 2 } }))).toMatch(/2 hard links/);
  });
});

describe('checkIsolation', () => {
  const self = { uid: 0, gid: 0 };

  it('refuses the agent\'s own uid (no --user) with code node_key_exposed and the way out', () => {
    expect(() => checkIsolation(keyFile, undefined, { allowSharedUid: false, self })).toThrow(
      expect.objectContaining({ code: 'node_key_exposed', message: expect.stringMatching(/as the agent's own user: uid 0 is the agent's own.*--user U.*--allow-shared-uid/) }),
    );
  });

  it('passes a uid that cannot read the key; --allow-shared-uid passes anything', () => {
    expect(() => checkIsolation(keyFile, { uid: 65534, gid: 65534 }, { allowSharedUid: false, self: { uid: 12345, gid: 12345 } })).not.toThrow();
    expect(() => checkIsolation(keyFile, undefined, { allowSharedUid: true, self })).not.toThrow();
  });

  it('names the key file when it cannot be checked', () => {
    expect(() => checkIsolation(join(keyDir, 'missing.key'), { uid: 65534, gid: 65534 }, { allowSharedUid: false, self: { uid: 1, gid: 1 } }))
      .toThrow(expect.objectContaining({ code: 'config', message: expect.stringMatching(/missing\.key: ENOENT/) }));
  });
});

describe('resolveRunAs', () => {
  const passwd = join(scratch.dir, 'passwd');
  const group = join(scratch.dir, 'group');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nbilling:x:2001:2002:Billing:/srv/billing:/usr/sbin/nologin\n');
  writeFileSync(group, 'root:x:0:\nbilling:x:2002:\nshared:x:3000:billing\n');
  const files = { passwd, group };

  it('a name: its uid, primary gid, name and home', () => {
    expect(resolveRunAs('billing', undefined, files)).toEqual({ uid: 2001, gid: 2002, name: 'billing', home: '/srv/billing' });
  });

  it('--group by name or number', () => {
    expect(resolveRunAs('billing', 'shared', files).gid).toBe(3000);
    expect(resolveRunAs('2001', '4000', files)).toMatchObject({ uid: 2001, gid: 4000, name: 'billing' });
  });

  it('a numeric uid without an entry needs --group; unknown names are config errors', () => {
    expect(resolveRunAs('7777', '7777', files)).toEqual({ uid: 7777, gid: 7777 });
    expect(() => resolveRunAs('7777', undefined, files)).toThrow(expect.objectContaining({ code: 'config', message: expect.stringMatching(/give --group/) }));
    expect(() => resolveRunAs('nobody-here', undefined, files)).toThrow(expect.objectContaining({ code: 'config' }));
    expect(() => resolveRunAs('billing', 'no-group', files)).toThrow(expect.objectContaining({ code: 'config', message: expect.stringMatching(/--group no-group/) }));
  });
});

describe('canSwitchUser', () => {
  it('root may; otherwise it takes CAP_SETUID and CAP_SETGID in CapEff', () => {
    expect(canSwitchUser(() => 'CapEff:\t0000000000000000\n', 0)).toBe(true);
    expect(canSwitchUser(() => 'CapEff:\t00000000000000c0\n', 1000)).toBe(true);
    expect(canSwitchUser(() => 'CapEff:\t0000000000000080\n', 1000)).toBe(false);
    expect(canSwitchUser(() => 'CapEff:\t0000000000000000\n', 1000)).toBe(false);
  });
});
