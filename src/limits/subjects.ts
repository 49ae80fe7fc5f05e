/**
 * Suspension subjects as operators write them and the store keeps them: `software:<name>`,
 * `zone:<name>`, `key:<owner>/<purpose>`, and a node as `node:<SAN URI>`, `node:sha256:<hex>` (its
 * certificate's fingerprint) or `node:serial:<hex>`. Parsed once at the edge (CLI, admin API),
 * canonical afterwards, so a suspension set one way is found by a release the same way.
 */
import { KeyName, Sha256Hex } from '../protocol.js';
import { PolicyName } from '../policy/names.js';
import { normalizeSerial } from './nodes.js';

export const SUBJECT_KINDS = ['software', 'zone', 'key', 'node'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

const MAX_SUBJECT = 2100;

/** The canonical subject, or why `text` is not one. */
export function parseSubject(text: string): { subject: string } | { problem: string } {
  if (text.length > MAX_SUBJECT) return { problem: `a subject of at most ${MAX_SUBJECT} characters` };
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const name = colon < 0 ? '' : text.slice(colon + 1);
  return subjectOf(kind, name);
}

/** `kind` and `name` given apart (`keyanchor suspend node spiffe://…`). */
export function subjectOf(kind: string, name: string): { subject: string } | { problem: string } {
  switch (kind) {
    case 'software':
    case 'zone':
      return PolicyName.safeParse(name).success ? { subject: `${kind}:${name}` } : { problem: `"${name}" is not a ${kind} name (lowercase letters, digits, ".", "_", "-")` };
    case 'key':
      return KeyName.safeParse(name).success ? { subject: `key:${name}` } : { problem: `"${name}" is not a key name (owner/purpose)` };
    case 'node':
      return nodeSubject(name);
    default:
      return { problem: `a subject is software:NAME, zone:NAME, key:OWNER/PURPOSE or node:SAN-URI|sha256:HEX|serial:HEX, not "${kind}:…"` };
  }
}

function nodeSubject(name: string): { subject: string } | { problem: string } {
  if (name.startsWith('sha256:')) {
    const hex = name.slice(7).toLowerCase();
    return Sha256Hex.safeParse(hex).success ? { subject: `node:sha256:${hex}` } : { problem: 'a node fingerprint is sha256: and 64 hex digits' };
  }
  if (name.startsWith('serial:')) {
    const hex = name.slice(7);
    return /^[0-9a-fA-F:]{1,96}$/.test(hex) ? { subject: `node:serial:${normalizeSerial(hex)}` } : { problem: 'a node serial is serial: and hex digits' };
  }
  // A SAN URI: a scheme, then anything without spaces or control characters.
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s\u0000-\u001f\u007f]+$/.test(name) ? { subject: `node:${name}` } : { problem: 'a node is a SAN URI (spiffe://…), sha256:HEX or serial:HEX' };
}
