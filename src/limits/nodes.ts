/**
 * Nodes as the controls see them: the identity a per-node window or suspension is keyed by, and
 * whether a node matches a selector of the policy (deny-list, node subjects).
 */
import type { NodeIdentity } from '../policy/evaluate.js';
import type { NodeSelector } from '../policy/types.js';

/** Serial numbers compare as lowercase hex without colons or leading zeros. */
export function normalizeSerial(hex: string): string {
  const s = hex.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/**
 * The node a per-node window, count or suspension belongs to: its first SAN URI (a SPIFFE ID
 * survives certificate renewal), else `sha256:` and its certificate fingerprint. Never a metric
 * label: there are as many as there are nodes.
 */
export const nodeId = (node: NodeIdentity): string => node.sanUris[0] ?? `sha256:${node.fingerprint}`;

/** The suspension subjects that name this node: by id, fingerprint, serial and every SAN URI. */
export function nodeSubjects(node: NodeIdentity): string[] {
  const out = [`node:sha256:${node.fingerprint}`];
  if (node.serial !== undefined) out.push(`node:serial:${node.serial}`);
  for (const u of node.sanUris) out.push(`node:${u}`);
  return out;
}

export function matchesNode(sel: NodeSelector, node: NodeIdentity): boolean {
  if (sel.nodeCA !== undefined && sel.nodeCA !== node.nodeCA) return false;
  if (sel.fingerprint !== undefined) return sel.fingerprint === node.fingerprint;
  if (sel.serial !== undefined) return node.serial !== undefined && sel.serial === node.serial;
  return sel.sanUri !== undefined && node.sanUris.includes(sel.sanUri);
}

/** How a selector reads in messages and suspension subjects: `node:sha256:…`, `node:serial:…`, `node:<SAN URI>`. */
export function selectorSubject(sel: NodeSelector): string {
  if (sel.fingerprint !== undefined) return `node:sha256:${sel.fingerprint}`;
  if (sel.serial !== undefined) return `node:serial:${sel.serial}`;
  return `node:${sel.sanUri!}`;
}
