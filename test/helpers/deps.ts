import { execFileSync } from 'node:child_process';

/**
 * Whether an external tool a suite needs is installed. When it is missing the suite says so
 * loudly and skips — unless KEYANCHOR_REQUIRE_DEPS=1 (set by CI), where a missing tool fails.
 */
export function requireTool(tool: string, forWhat: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    const msg = `${tool} is not installed: ${forWhat} cannot run`;
    if (process.env.KEYANCHOR_REQUIRE_DEPS === '1') throw new Error(`${msg} (KEYANCHOR_REQUIRE_DEPS=1)`);
    console.warn(`\n*** SKIPPING: ${msg}. Install it (see .ci/run) to run it. ***\n`);
    return false;
  }
}
