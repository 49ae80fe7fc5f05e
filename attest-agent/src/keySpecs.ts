/**
 * `--key` specs: which keys to ask for and where each goes.
 *   NAME=ENVVAR            base64 of the key in the program's environment variable ENVVAR
 *   NAME@VERSION=ENVVAR    the same, pinned to a version
 *   NAME[@VERSION]:file=PATH  raw key bytes in PATH (mode 0400, tmpfs only), removed at exit
 *   NAME[@VERSION]         (fetch only) no destination
 */
import { KeyName } from '../../src/protocol.js';
import { AgentError } from './errors.js';
import type { KeyRequest } from './evidence.js';

export type KeyDestination = { kind: 'env'; variable: string } | { kind: 'file'; path: string } | { kind: 'none' };
export interface KeySpec extends KeyRequest { destination: KeyDestination }

const SPEC = /^([^@:=]+)(?:@(\d{1,7}))?(?:(:file)?=(.*))?$/s;
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

const bad = (spec: string, why: string) => new AgentError('usage', `--key ${JSON.stringify(spec)}: ${why}`);

export function parseKeySpec(spec: string, requireDestination: boolean): KeySpec {
  const m = SPEC.exec(spec);
  if (!m) throw bad(spec, 'expected NAME[@VERSION]=ENVVAR or NAME[@VERSION]:file=PATH');
  const [, name = '', versionText, fileMarker, target] = m;
  if (!KeyName.safeParse(name).success) throw bad(spec, 'key name must be owner/purpose (lowercase [a-z0-9._-])');
  const version = versionText === undefined ? undefined : Number(versionText);
  if (version !== undefined && version < 1) throw bad(spec, 'version must be ≥ 1');
  let destination: KeyDestination;
  if (target === undefined) {
    if (requireDestination) throw bad(spec, 'missing =ENVVAR or :file=PATH');
    destination = { kind: 'none' };
  } else if (fileMarker) {
    if (!target) throw bad(spec, 'empty file path');
    destination = { kind: 'file', path: target };
  } else {
    if (!ENV_VAR.test(target)) throw bad(spec, 'environment variable names are [A-Za-z_][A-Za-z0-9_]*');
    destination = { kind: 'env', variable: target };
  }
  return version === undefined ? { name, destination } : { name, version, destination };
}

/** Parses all specs and rejects duplicate key names and duplicate destinations. */
export function parseKeySpecs(specs: readonly string[], requireDestination: boolean): KeySpec[] {
  if (specs.length === 0) throw new AgentError('usage', 'at least one --key is required');
  if (specs.length > 16) throw new AgentError('usage', 'at most 16 --key options');
  const parsed = specs.map((s) => parseKeySpec(s, requireDestination));
  const names = new Set<string>();
  const targets = new Set<string>();
  for (const k of parsed) {
    if (names.has(k.name)) throw new AgentError('usage', `key ${k.name} is requested twice`);
    names.add(k.name);
    const d = k.destination;
    const target = d.kind === 'env' ? `env:${d.variable}` : d.kind === 'file' ? `file:${d.path}` : undefined;
    if (target && targets.has(target)) throw new AgentError('usage', `two keys go to the same ${target}`);
    if (target) targets.add(target);
  }
  return parsed;
}
