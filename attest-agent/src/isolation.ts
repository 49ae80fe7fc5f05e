/**
 * Keeping the node key from the workload. The node key is what lets anyone attest as this node:
 * a workload that can read it (or that runs as the agent's own user, and so can read it, ptrace
 * the agent or signal it) can run `attest-agent fetch --program /bin/true` and obtain the keys
 * policy grants to any other program. So `exec` starts the workload under another uid/gid
 * (`--user`, `--group`; supplementary groups dropped), and refuses, before attesting, to start a
 * workload whose uid could read the node key, unless told `--allow-shared-uid`.
 *
 * "Could read" is decided from ownership and mode bits along the key's real path: root reads
 * everything; the owner of the file or of any directory above it can chmod its way in; otherwise
 * every directory must grant search (x) and the file read (r) to the uid's class (group when the
 * object's group is the workload's gid, others otherwise). A file with more than one hard link is
 * refused too (another name could sit in a directory the workload can reach). POSIX ACLs and
 * capabilities granted by other means are not inspected (docs/deployment.md says not to use them).
 */
import { readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, parse } from 'node:path';
import { AgentError } from './errors.js';

export interface RunAs {
  uid: number;
  gid: number;
  /** The user's name and home when /etc/passwd knows the uid (set as USER, LOGNAME, HOME in the child). */
  name?: string;
  home?: string;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }

function readTable(file: string): string[][] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

const NUMERIC = /^\d{1,10}$/;

/** `--user NAME|UID` and `--group NAME|GID` from /etc/passwd and /etc/group; numeric ids need no entry. */
export function resolveRunAs(user: string, group?: string, files = { passwd: '/etc/passwd', group: '/etc/group' }): RunAs {
  const users: PasswdEntry[] = readTable(files.passwd)
    .filter((f) => f.length >= 7)
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }));
  const entry = NUMERIC.test(user) ? users.find((u) => u.uid === Number(user)) : users.find((u) => u.name === user);
  if (!entry && !NUMERIC.test(user)) throw new AgentError('config', `--user ${user}: no such user in ${files.passwd} (give a numeric uid to use one without an entry)`);
  const uid = entry?.uid ?? Number(user);
  let gid: number;
  if (group === undefined) {
    if (!entry) throw new AgentError('config', `--user ${user}: uid ${uid} has no ${files.passwd} entry to take a group from; give --group`);
    gid = entry.gid;
  } else if (NUMERIC.test(group)) gid = Number(group);
  else {
    const g = readTable(files.group).find((f) => f[0] === group);
    if (!g) throw new AgentError('config', `--group ${group}: no such group in ${files.group}`);
    gid = Number(g[2]);
  }
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new AgentError('config', `--user/--group: id out of range`);
  return { uid, gid, ...(entry ? { name: entry.name, home: entry.home } : {}) };
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

/** Why `who` could read `file`, or undefined when it cannot. */
export function readableBy(file: string, who: { uid: number; gid: number }, stat: (p: string) => Stats = statSync): string | undefined {
  if (who.uid === 0) return 'it runs as root, which reads every file';
  const real = realpathSync(file);
  const st = stat(real);
  if (st.nlink > 1) return `${real} has ${st.nlink} hard links; another name for it may be reachable`;
  const allows = (s: Stats, bits: { group: number; other: number }) => ((s.gid === who.gid ? bits.group : bits.other) & s.mode) !== 0;
  // Directories from the root down: one this uid can neither search nor chmod keeps the key out of reach.
  const dirs: string[] = [];
  for (let d = dirname(real); ; d = dirname(d)) {
    dirs.unshift(d);
    if (d === parse(d).root) break;
  }
  for (const d of dirs) {
    const ds = stat(d);
    if (ds.uid === who.uid) return `it owns ${d}, above the key, and can change its mode`;
    if (!allows(ds, { group: 0o010, other: 0o001 })) return undefined;
  }
  if (st.uid === who.uid) return `it owns ${real} (mode ${octal(st.mode)})`;
  if (allows(st, { group: 0o040, other: 0o004 })) {
    return `${real} (owner ${st.uid}, group ${st.gid}, mode ${octal(st.mode)}) is readable by ${st.gid === who.gid ? 'its group' : 'others'}, and every directory above it can be searched`;
  }
  return undefined;
}

/**
 * Refuses (AgentError node_key_exposed) to start a workload as `runAs` (the agent's own ids when
 * undefined) when that uid could read the node key or is the agent's own uid, unless allowed.
 */
export function checkIsolation(nodeKey: string, runAs: RunAs | undefined, opts: { allowSharedUid: boolean; self?: { uid: number; gid: number } }): void {
  if (opts.allowSharedUid) return;
  const self = opts.self ?? { uid: process.getuid!(), gid: process.getgid!() };
  const who = runAs ?? self;
  const how = runAs === undefined ? 'as the agent\'s own user' : `as uid ${who.uid} gid ${who.gid}`;
  let reason: string | undefined;
  if (who.uid === self.uid) reason = `uid ${who.uid} is the agent's own, which reads the node key and can trace or signal the agent`;
  else {
    try {
      reason = readableBy(nodeKey, who);
    } catch (err) {
      throw new AgentError('config', `cannot check who can read --node-key ${nodeKey}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }
  if (reason === undefined) return;
  throw new AgentError(
    'node_key_exposed',
    `refusing to start the program ${how}: ${reason}. A program that can read the node key can attest as this node and obtain any ` +
      `program's keys. Run it under a user that cannot (--user U [--group G]; the agent needs root or CAP_SETUID/CAP_SETGID), ` +
      `or pass --allow-shared-uid to accept the risk (development only).`,
  );
}

/** True when this process may switch to other uids and gids (root, or CAP_SETUID and CAP_SETGID). */
export function canSwitchUser(status = (): string => readFileSync('/proc/self/status', 'utf8'), uid = process.getuid?.()): boolean {
  if (uid === 0) return true;
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status())?.[1];
    const caps = hex ? BigInt(`0x${hex}`) : 0n;
    const CAP_SETGID = 6n;
    const CAP_SETUID = 7n;
    return ((caps >> CAP_SETGID) & 1n) === 1n && ((caps >> CAP_SETUID) & 1n) === 1n;
  } catch {
    return false;
  }
}
