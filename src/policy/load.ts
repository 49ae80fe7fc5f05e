/**
 * Loads every policy file in a directory, validates it against the schema, resolves the PEM
 * material it names, and cross-checks the references between sections. Every problem is
 * reported with file, line, column and path; a policy with any problem is not loaded at all.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { locateIssues } from '../schemaProblems.js';
import { formatPath, parseYamlSource, type SourcePosition } from '../yamlSource.js';
import { MaterialError, parseCaCertificate, parsePublisherKey, readMaterial, type MaterialContext } from './material.js';
import { PolicyFileSchema, type PolicyFile } from './schema.js';
import type { Grant, KeyGrant, NodeCA, Policy, Publisher, Software, Team, Zone } from './types.js';

export interface PolicyProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export const formatProblem = (p: PolicyProblem): string => `${p.file}:${p.line}:${p.col} ${p.path}: ${p.message}`;

export class PolicyError extends Error {
  readonly code = 'policy_invalid';
  constructor(readonly problems: PolicyProblem[]) {
    super(`invalid policy:\n  ${problems.map(formatProblem).join('\n  ')}`);
    this.name = 'PolicyError';
  }
}

export interface LoadOptions {
  vars?: Record<string, string>;
}

interface Located<T> {
  value: T;
  file: string;
  at: (p: ReadonlyArray<PropertyKey>) => SourcePosition;
  path: PropertyKey[];
}

const POLICY_EXT = /\.(ya?ml|json)$/;

export function loadPolicyDir(dir: string, opts: LoadOptions = {}): Policy {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => POLICY_EXT.test(n)).sort();
  } catch (e) {
    throw new PolicyError([{ file: dir, line: 0, col: 0, path: '(dir)', message: `cannot read the policy directory (${(e as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  const files = names.map((n) => ({ file: path.join(dir, n), text: readFileSync(path.join(dir, n), 'utf8') }));
  return buildPolicy(files, opts);
}

export function buildPolicy(files: Array<{ file: string; text: string }>, opts: LoadOptions = {}): Policy {
  const problems: PolicyProblem[] = [];
  const sections = { nodeCAs: [] as Located<NonNullable<PolicyFile['nodeCAs']>[number]>[], zones: [] as Located<NonNullable<PolicyFile['zones']>[number]>[], publishers: [] as Located<NonNullable<PolicyFile['publishers']>[number]>[], software: [] as Located<NonNullable<PolicyFile['software']>[number]>[], teams: [] as Located<NonNullable<PolicyFile['teams']>[number]>[] };
  const ctxFor = new Map<string, MaterialContext>();
  const sources: Policy['sources'][number][] = [];

  for (const { file, text } of files) {
    const display = displayPath(file);
    const src = parseYamlSource(text);
    sources.push({ file: display, sha256: createHash('sha256').update(text).digest('hex') });
    for (const e of src.errors) problems.push({ file: display, ...e.pos, path: '(syntax)', message: e.message });
    if (src.errors.length) continue;
    const parsed = PolicyFileSchema.safeParse(src.value ?? {});
    if (!parsed.success) {
      for (const p of locateIssues(parsed.error, src.locate)) problems.push({ file: display, ...p.pos, path: formatPath(p.path), message: p.message });
      continue;
    }
    ctxFor.set(display, { baseDir: path.dirname(path.resolve(file)), vars: opts.vars ?? {} });
    for (const key of ['nodeCAs', 'zones', 'publishers', 'software', 'teams'] as const) {
      (parsed.data[key] ?? []).forEach((value, i) => (sections[key] as Located<unknown>[]).push({ value, file: display, at: src.locate, path: [key, i] }));
    }
  }

  const report = (l: Located<unknown>, sub: PropertyKey[], message: string) => {
    const p = [...l.path, ...sub];
    problems.push({ file: l.file, ...l.at(p), path: formatPath(p), message });
  };
  const unique = <T extends { name: string }>(items: Located<T>[], what: string) => {
    const seen = new Map<string, Located<T>>();
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

  const material = <T>(l: Located<unknown>, sub: PropertyKey[], m: { file?: string; pem?: string }, parse: (pem: string) => T): T | undefined => {
    try {
      return parse(readMaterial(m, ctxFor.get(l.file)!));
    } catch (e) {
      if (!(e instanceof MaterialError)) throw e;
      report(l, sub, e.message);
      return undefined;
    }
  };

  const nodeCAs = new Map<string, NodeCA>();
  for (const l of sections.nodeCAs) {
    const c = material(l, ['certificate'], l.value.certificate, parseCaCertificate);
    if (c) nodeCAs.set(l.value.name, { name: l.value.name, ...c });
  }
  const publishers = new Map<string, Publisher>();
  for (const l of sections.publishers) {
    const { name, publicKey, certificate, subjects } = l.value;
    if (publicKey) {
      const key = material(l, ['publicKey'], publicKey, parsePublisherKey);
      if (key) publishers.set(name, { name, kind: 'key', key });
    } else if (certificate) {
      const c = material(l, ['certificate'], certificate, parseCaCertificate);
      if (c) publishers.set(name, { name, kind: 'ca', ca: c.cert, ...(subjects ? { subjects } : {}) });
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

  const software: Software[] = sections.software.map((l) => {
    const sw = l.value;
    const checkPublishers = (which: 'binary' | 'image', names: string[] | undefined) =>
      (names ?? []).forEach((n, i) => publisherNames.has(n) || report(l, [which, 'publishers', i], `unknown publisher "${n}"`));
    checkPublishers('binary', sw.binary.publishers);
    checkPublishers('image', sw.image?.publishers);
    const grants: Grant[] = sw.grants.map((g, gi) => {
      g.zones.forEach((z, zi) => zoneNames.has(z) || report(l, ['grants', gi, 'zones', zi], `unknown zone "${z}"`));
      return { keys: g.keys.map(parseKeyGrant), zones: g.zones, ...(g.nodes ? { nodes: g.nodes } : {}) };
    });
    return {
      name: sw.name,
      binary: { digests: new Set(sw.binary.digests ?? []), publishers: sw.binary.publishers ?? [] },
      ...(sw.image ? { image: { digests: new Set(sw.image.digests ?? []), publishers: sw.image.publishers ?? [] } } : {}),
      grants,
    };
  });

  const teams: Team[] = sections.teams.map(({ value: t }) => ({ name: t.name, role: t.role, keyPrefixes: t.keyPrefixes ?? [], members: t.members }));

  if (problems.length) throw new PolicyError(problems);
  return Object.freeze({ nodeCAs, zones, publishers, software, teams, sources });
}

function parseKeyGrant(ref: string): KeyGrant {
  const [name, version] = ref.split('@') as [string, string | undefined];
  return version === undefined ? { name } : { name, version: Number(version) };
}

function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
