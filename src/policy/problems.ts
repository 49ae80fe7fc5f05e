/**
 * What is wrong with a policy, located: `file:line:col path: message`. Every loader step reports
 * into a list of these; a policy with any problem is not used.
 */
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

/** A problem with a whole file (its type, size or encoding), placed at its start unless a line is known. */
export const fileProblem = (file: string, path: string, message: string, at: { line: number; col: number } = { line: 1, col: 1 }): PolicyProblem => ({
  file,
  ...at,
  path,
  message,
});
