import type { z } from 'zod';
import type { SourcePosition } from './yamlSource.js';

export interface LocatedProblem {
  path: PropertyKey[];
  pos: SourcePosition;
  message: string;
}

/** Turns a zod error into one located problem per issue (one per unknown key). */
export function locateIssues(error: z.ZodError, locate: (p: ReadonlyArray<PropertyKey>, opts?: { atKey?: boolean }) => SourcePosition): LocatedProblem[] {
  const out: LocatedProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const path = [...issue.path, k];
        out.push({ path, pos: locate(path, { atKey: true }), message: `unknown key "${k}"` });
      }
    } else {
      out.push({ path: [...issue.path], pos: locate(issue.path), message: issue.message });
    }
  }
  return out;
}
