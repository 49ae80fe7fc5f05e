import { describe, expect, it } from 'vitest';
import { PROBLEM_CODES, PROBLEM_STATUS } from '../../../src/protocol.js';
import { runCli } from '../../../attest-agent/src/cli.js';
import { AgentError, formatAgentError, LOCAL_CODES, toAgentError } from '../../../attest-agent/src/errors.js';
import { EXIT_CODE_TABLE, EXIT_CODES, exitCodeFor } from '../../../attest-agent/src/exitCodes.js';

describe('exit-code table', () => {
  it('has an entry for every broker problem code and every local code', () => {
    for (const code of Object.keys(PROBLEM_STATUS)) expect(EXIT_CODES, code).toHaveProperty(code);
    for (const code of LOCAL_CODES) expect(EXIT_CODES, code).toHaveProperty(code);
    expect(EXIT_CODE_TABLE).toHaveLength(PROBLEM_CODES.length + LOCAL_CODES.length);
  });

  it('gives every code a distinct status in 1..125, never 0, never a shell/signal status', () => {
    const statuses = EXIT_CODE_TABLE.map((r) => r.exit);
    expect(new Set(statuses).size).toBe(statuses.length);
    for (const s of statuses) expect(s >= 1 && s <= 125, String(s)).toBe(true);
  });

  it('keeps the documented anchors', () => {
    expect(exitCodeFor('usage')).toBe(1);
    expect(exitCodeFor('config')).toBe(2);
    expect(exitCodeFor('request_malformed')).toBe(10);
    for (const c of ['network_unreachable', 'timeout', 'measurement_failed', 'tmpfs_refused'] as const) {
      expect(exitCodeFor(c)).toBeGreaterThan(2);
    }
    for (const c of PROBLEM_CODES) expect(EXIT_CODE_TABLE.find((r) => r.code === c)?.source).toBe('broker');
  });

  it('is printed in full by `attest-agent exit-codes`', async () => {
    let out = '';
    const status = await runCli(['node', 'attest-agent', 'exit-codes'], { out: (t) => { out += t; }, err: () => undefined });
    expect(status).toBe(0);
    for (const r of EXIT_CODE_TABLE) expect(out).toMatch(new RegExp(`^\\s*${r.exit}\\s+${r.source}\\s+${r.code}\\s`, 'm'));
  });
});

describe('error lines', () => {
  it('formats `attest-agent: <code>: <message> (request <id>)` on one line', () => {
    const err = new AgentError('software_not_approved', 'policy says\nno', { requestId: 'req-1' });
    expect(formatAgentError(err)).toBe('attest-agent: software_not_approved: policy says no (request req-1)');
    expect(formatAgentError(new AgentError('timeout', 'slow'))).toBe('attest-agent: timeout: slow');
  });

  it('turns unknown throwables into agent_internal', () => {
    expect(toAgentError(new TypeError('boom')).code).toBe('agent_internal');
  });

  it('maps CLI usage errors to 1 and local failures to their code', async () => {
    const io = { out: () => undefined, err: () => undefined };
    expect(await runCli(['node', 'attest-agent', 'bogus'], io)).toBe(1);
    expect(await runCli(['node', 'attest-agent', 'exec', '--broker', 'http://x'], io)).toBe(1);
    let err = '';
    const status = await runCli(['node', 'attest-agent', 'measure', '/nonexistent/file'], { out: () => undefined, err: (t) => { err += t; } });
    expect(status).toBe(exitCodeFor('measurement_failed'));
    expect(err).toBe('attest-agent: measurement_failed: cannot read /nonexistent/file: ENOENT\n');
  });
});
