/**
 * The text form (`-o text`) of what the key and suspension commands print, for people; `-o json`
 * prints the same data as JSON. Local and remote commands print the same shapes.
 */
import type { KeyInfo } from '../keys/keyService.js';
import type { SuspensionView } from '../limits/suspensionService.js';

const by = (at: string, who: string) => `${at} by ${who}`;

export function keyText(k: KeyInfo): string {
  const lines = [`${k.name}  created ${by(k.createdAt, k.createdBy)}`];
  for (const v of k.versions) {
    const changed = v.changedAt ? `, ${v.state} ${by(v.changedAt, v.changedBy ?? '?')}` : '';
    const rel = v.releases ? `; released ${v.releases.count} time(s), last ${v.releases.lastAt} to ${v.releases.lastNode} (${v.releases.lastSoftware.join(', ')})` : '';
    lines.push(`  v${v.version}  ${v.state.padEnd(9)}  created ${by(v.createdAt, v.createdBy)}${changed}${rel}`);
  }
  return lines.join('\n');
}

export function keysText(keys: readonly KeyInfo[]): string {
  if (keys.length === 0) return 'no keys';
  const width = Math.max(...keys.map((k) => k.name.length));
  return keys
    .map((k) => {
      const enabled = k.versions.filter((v) => v.state === 'enabled').length;
      return `${k.name.padEnd(width)}  ${k.versions.length} version(s), ${enabled} enabled  created ${by(k.createdAt, k.createdBy)}`;
    })
    .join('\n');
}

export function suspensionsText(list: readonly SuspensionView[]): string {
  if (list.length === 0) return 'no active suspensions';
  return list.map((s) => `${s.subject}  since ${by(s.createdAt, s.createdBy)}: ${s.reason}`).join('\n');
}

export function suspensionText(s: SuspensionView): string {
  const state = s.active ? 'ACTIVE' : `cleared ${by(s.clearedAt ?? '?', s.clearedBy ?? '?')}`;
  const figures = Object.keys(s.figures).length ? `\n  figures: ${JSON.stringify(s.figures)}` : '';
  return `${s.subject}  ${state}\n  suspended ${by(s.createdAt, s.createdBy)}: ${s.reason}${figures}\n  id ${s.id}`;
}

export const historyText = (h: { subject: string; history: readonly SuspensionView[] }): string => h.history.map(suspensionText).join('\n');
