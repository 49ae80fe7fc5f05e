/**
 * From the files of a policy directory to a checked, plain-data policy: parse each top-level
 * policy file, validate it against the schema, resolve the PEM material it names, and cross-check
 * the references between sections. Every problem is reported with file, line, column and path.
 *
 * The result is plain data (PEM text, arrays, JSON chunks) so that it can be made in a worker
 * thread and handed to the main thread cheaply; `hydrate.ts` turns it into the Policy.
 */
import { createHash, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { formatPath } from '../yamlSource.js';
import { displayPath, POLICY_FILE, type PolicyTree } from './files.js';
import { MaterialError, parseCaCertificate, parsePublisherKey, readMaterial, type MaterialContext } from './material.js';
import { parseSchemaFile, type Locate } from './policyText.js';
import type { PolicyProblem } from './problems.js';
import { PolicyFileSchema, SECTIONS, type PolicyFile, type Section } from './schema.js';
import { compileAlarm, compileLimit, nodeSelector, type ControlNames } from './compileControls.js';
import type { Alarm, Grant, KeyGrant, NodeSelector, RateLimit, Team, Zone } from './types.js';

/** A software entry as it crosses to the main thread: digests as arrays. */
export interface SoftwareData {
  name: string;
  binary: { digests: string[]; publishers: string[] };
  image?: { digests: string[]; publishers: string[] };
  grants: Grant[];
}

export interface CompiledPolicy {
  nodeCAs: Array<{ name: string; pem: string }>;
  /** A key publisher's KeyObject crosses to the main thread as is (KeyObjects are cloneable); a CA's PEM is parsed again. */
  publishers: Array<{ name: string; kind: 'key'; key: KeyObject } | { name: string; kind: 'ca'; pem: string; subjects?: string[] }>;
  zones: Zone[];
  /** Software entries as JSON arrays of at most SOFTWARE_CHUNK entries each. */
  software: string[];
  teams: Team[];
  limits: RateLimit[];
  alarms: Alarm[];
  deniedNodes: NodeSelector[];
  sources: Array<{ file: string; sha256: string }>;
}

/** Entries per chunk: building one chunk on the event loop takes a few milliseconds. */
export const SOFTWARE_CHUNK = 200;

export interface CompileOptions {
  vars?: Record<string, string>;
  /** A signed bundle: `file:` material must be inside the directory. */
  insideOnly?: boolean;
}

interface Located<T> {
  value: T;
  file: string;
  at: Locate;
  path: PropertyKey[];
}
type Entry<S extends Section> = NonNullable<PolicyFile[S]>[number];
type Sections = { [S in Section]: Located<Entry<S>>[] };

export function compilePolicy(tree: Pick<PolicyTree, 'dir' | 'files'>, opts: CompileOptions = {}): { policy?: CompiledPolicy; problems: PolicyProblem[] } {
  const problems: PolicyProblem[] = [];
  const sections = Object.fromEntries(SECTIONS.map((s) => [s, []])) as unknown as Sections;
  const sources: CompiledPolicy['sources'] = [];

  for (const [rel, bytes] of tree.files) {
    if (rel.includes('/') || !POLICY_FILE.test(rel)) continue;
    const display = displayPath(path.join(tree.dir, rel));
    sources.push({ file: display, sha256: createHash('sha256').update(bytes).digest('hex') });
    const parsed = parseSchemaFile(bytes, display, PolicyFileSchema);
    if ('problems' in parsed) {
      problems.push(...parsed.problems);
      continue;
    }
    for (const key of SECTIONS) {
      ((parsed.data[key] ?? []) as unknown[]).forEach((value, i) => (sections[key] as Located<unknown>[]).push({ value, file: display, at: parsed.locate, path: [key, i] }));
    }
  }

  const report = (l: Located<unknown>, sub: PropertyKey[], message: string) => {
    const p = [...l.path, ...sub];
    problems.push({ file: l.file, ...l.at(p), path: formatPath(p), message });
  };
  const unique = (items: Located<{ name: string }>[], what: string) => {
    const seen = new Map<string, Located<{ name: string }>>();
    for (const it of items) {
      const prev = seen.get(it.value.name);
      if (prev) report(it, ['name'], `${what} "${it.value.name}" is already defined at ${prev.file}:${prev.at(prev.path).line}`);
      else seen.set(it.value.name, it);
    }
  };
  unique(sections.nodeCAs, 'node CA');
  unique(sections.zones, 'zone');
  unique(sections.publishers, 'publisher');
  unique(sections.software, 'software');
  unique(sections.teams, 'team');
  unique(sections.limits, 'limit');
  unique(sections.alarms, 'alarm');

  const ctx: MaterialContext = { tree, vars: opts.vars ?? {}, insideOnly: opts.insideOnly ?? false };
  const material = <T>(l: Located<unknown>, sub: PropertyKey[], m: { file?: string; pem?: string }, parse: (pem: string) => T): { pem: string; parsed: T } | undefined => {
    try {
      const pem = readMaterial(m, ctx);
      return { pem, parsed: parse(pem) };
    } catch (e) {
      if (!(e instanceof MaterialError)) throw e;
      report(l, sub, e.message);
      return undefined;
    }
  };

  const nodeCAs: CompiledPolicy['nodeCAs'] = [];
  for (const l of sections.nodeCAs) {
    const m = material(l, ['certificate'], l.value.certificate, parseCaCertificate);
    if (m) nodeCAs.push({ name: l.value.name, pem: m.pem });
  }
  const publishers: CompiledPolicy['publishers'] = [];
  for (const l of sections.publishers) {
    const { name, publicKey, certificate, subjects } = l.value;
    if (publicKey) {
      const m = material(l, ['publicKey'], publicKey, parsePublisherKey);
      if (m) publishers.push({ name, kind: 'key', key: m.parsed });
    } else {
      const m = material(l, ['certificate'], certificate!, parseCaCertificate);
      if (m) publishers.push({ name, kind: 'ca', pem: m.pem, ...(subjects ? { subjects } : {}) });
    }
  }
  const nodeCANames = new Set(sections.nodeCAs.map((l) => l.value.name));
  const publisherNames = new Set(sections.publishers.map((l) => l.value.name));
  const zones: Zone[] = sections.zones.map((l) => {
    const { nodeCA, subject, sanUriPrefix } = l.value.match;
    if (nodeCA && !nodeCANames.has(nodeCA)) report(l, ['match', 'nodeCA'], `unknown node CA "${nodeCA}"`);
    return { name: l.value.name, match: { ...(nodeCA ? { nodeCA } : {}), ...(subject ? { subject } : {}), ...(sanUriPrefix ? { sanUriPrefix } : {}) } };
  });
  const zoneNames = new Set(zones.map((z) => z.name));

  const software: SoftwareData[] = sections.software.map((l) => {
    const sw = l.value;
    const checkPublishers = (which: 'binary' | 'image', names: string[] | undefined) =>
      (names ?? []).forEach((n, i) => publisherNames.has(n) || report(l, [which, 'publishers', i], `unknown publisher "${n}"`));
    checkPublishers('binary', sw.binary.publishers);
    checkPublishers('image', sw.image?.publishers);
    const grants: Grant[] = sw.grants.map((g, gi) => {
      g.zones.forEach((z, zi) => zoneNames.has(z) || report(l, ['grants', gi, 'zones', zi], `unknown zone "${z}"`));
      return { keys: g.keys.map(parseKeyGrant), zones: g.zones, ...(g.nodes ? { nodes: g.nodes } : {}) };
    });
    const rule = (r: { digests?: string[] | undefined; publishers?: string[] | undefined }) => ({ digests: r.digests ?? [], publishers: r.publishers ?? [] });
    return { name: sw.name, binary: rule(sw.binary), ...(sw.image ? { image: rule(sw.image) } : {}), grants };
  });

  const teams: Team[] = sections.teams.map(({ value: t }) => ({ name: t.name, role: t.role, keyPrefixes: t.keyPrefixes ?? [], members: t.members }));

  const names: ControlNames = {
    zones: zoneNames,
    software: new Set(software.map((s) => s.name)),
    grantedKeys: new Set(software.flatMap((s) => s.grants.flatMap((g) => g.keys.map((k) => k.name)))),
    nodeCAs: nodeCANames,
  };
  const at = (l: Located<unknown>) => (sub: PropertyKey[], message: string) => report(l, sub, message);
  const limits = sections.limits.map((l) => compileLimit(l.value, names, at(l)));
  const alarms = sections.alarms.map((l) => compileAlarm(l.value, names, at(l)));
  const deniedNodes = sections.deniedNodes.map((l) => nodeSelector(l.value, names, at(l), []));

  if (problems.length) return { problems };
  const chunks: string[] = [];
  for (let i = 0; i < software.length; i += SOFTWARE_CHUNK) chunks.push(JSON.stringify(software.slice(i, i + SOFTWARE_CHUNK)));
  return { policy: { nodeCAs, publishers, zones, software: chunks, teams, limits, alarms, deniedNodes, sources }, problems };
}

function parseKeyGrant(ref: string): KeyGrant {
  const [name, version] = ref.split('@') as [string, string | undefined];
  return version === undefined ? { name } : { name, version: Number(version) };
}
