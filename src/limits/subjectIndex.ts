/**
 * Which limits or alarms cover a request, by lookups rather than a scan: entries filed under
 * their subject (zone, software entry, key, node by fingerprint, serial or SAN URI, or global),
 * and a request collects those of its zones, software entries, keys and node. The cost per
 * request is a few map lookups, however many limits and alarms the policy has.
 */
import type { NodeIdentity } from '../policy/evaluate.js';
import type { NodeSelector, Subject } from '../policy/types.js';
import { matchesNode } from './nodes.js';

/** What a request is, for the controls: its node, and what the policy decision said. */
export interface RequestSubjects {
  node: NodeIdentity;
  zones: readonly string[];
  software: readonly string[];
  /** The keys released (for refusals: the keys asked for). */
  keys: readonly string[];
}

const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
};

export class SubjectIndex<T> {
  readonly #global: T[] = [];
  readonly #zone = new Map<string, T[]>();
  readonly #software = new Map<string, T[]>();
  readonly #key = new Map<string, T[]>();
  /** Node entries by `f:<fingerprint>`, `s:<serial>` or `u:<SAN URI>`, with their selector (for nodeCA). */
  readonly #node = new Map<string, Array<{ sel: NodeSelector; item: T }>>();
  #size = 0;

  add(subject: Subject, item: T): void {
    this.#size++;
    switch (subject.kind) {
      case 'global': return void this.#global.push(item);
      case 'zone': return push(this.#zone, subject.name, item);
      case 'software': return push(this.#software, subject.name, item);
      case 'key': return push(this.#key, subject.name, item);
      case 'node': return push(this.#node, nodeKey(subject.node), { sel: subject.node, item });
    }
  }

  get size(): number {
    return this.#size;
  }

  /** Appends every entry that covers the request to `out` (each once). */
  collect(s: RequestSubjects, out: T[]): T[] {
    if (this.#size === 0) return out;
    out.push(...this.#global);
    for (const z of s.zones) this.#add(this.#zone.get(z), out);
    for (const sw of s.software) this.#add(this.#software.get(sw), out);
    for (const k of s.keys) this.#add(this.#key.get(k), out);
    if (this.#node.size) this.#nodes(s.node, (item) => out.push(item));
    return out;
  }

  /** The first node entry that matches `node`, if any. */
  nodeMatch(node: NodeIdentity): T | undefined {
    let found: T | undefined;
    if (this.#node.size) this.#nodes(node, (item) => (found ??= item));
    return found;
  }

  #add(l: T[] | undefined, out: T[]): void {
    if (l) for (const x of l) out.push(x);
  }

  #nodes(node: NodeIdentity, found: (item: T) => void): void {
    const keys = [`f:${node.fingerprint}`, ...(node.serial !== undefined ? [`s:${node.serial}`] : []), ...node.sanUris.map((u) => `u:${u}`)];
    for (const k of keys) for (const e of this.#node.get(k) ?? []) if (matchesNode(e.sel, node)) found(e.item);
  }
}

const nodeKey = (sel: NodeSelector): string =>
  sel.fingerprint !== undefined ? `f:${sel.fingerprint}` : sel.serial !== undefined ? `s:${sel.serial}` : `u:${sel.sanUri!}`;
