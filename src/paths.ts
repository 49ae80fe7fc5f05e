import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The keyanchor checkout: the nearest ancestor of this module with keyanchor's package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'keyanchor') return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the keyanchor package root');
    dir = up;
  }
}

export const demoAppPath = (): string => path.join(packageRoot(), 'attest-agent', 'examples', 'demo-app');
