import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitStatus, runProgram } from '../../../attest-agent/src/exec.js';
import { prepareProgram } from '../../../attest-agent/src/privateCopy.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

function script(name: string, body: string): string {
  const path = join(scratch.dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

async function runCaptured(file: string, argv0: string, args: string[], env: NodeJS.ProcessEnv = {}, cleanup?: () => void) {
  const outFile = join(scratch.dir, `out-${Math.random().toString(16).slice(2)}`);
  const fd = openSync(outFile, 'w');
  try {
    const running = await runProgram({ file, argv0, args, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', fd, 'inherit'], ...(cleanup ? { cleanup } : {}) });
    const status = await running.exited;
    return { status, stdout: readFileSync(outFile, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

describe('exec from the private copy (TOCTOU)', () => {
  it('runs the measured bytes even when the original is rewritten after measurement', async () => {
    const path = script('swap-in-place', 'echo original');
    const prepared = await prepareProgram(path, scratch.dir);
    writeFileSync(path, '#!/bin/sh\necho evil\n'); // rewrite in place between measure and spawn
    const { status, stdout } = await runCaptured(prepared.copyPath, path, [], {}, () => prepared.cleanupSync());
    expect(stdout).toBe('original\n');
    expect(status).toBe(0);
    expect(existsSync(prepared.copyPath)).toBe(false);
  });

  it('runs the measured bytes even when the path is swapped to another file (rename)', async () => {
    const path = script('swap-rename', 'echo original');
    const prepared = await prepareProgram(path, scratch.dir);
    const evil = script('evil', 'echo evil');
    renameSync(evil, path);
    const { stdout } = await runCaptured(prepared.copyPath, path, []);
    expect(stdout).toBe('original\n');
    await prepared.cleanup();
  });

  it('passes argv[0] = the original path, the arguments and the environment', async () => {
    const path = script('args', 'echo "$0|$1|$2|$KEY_VAR"');
    const prepared = await prepareProgram(path, scratch.dir);
    const { stdout } = await runCaptured(prepared.copyPath, path, ['a b', '-x'], { KEY_VAR: 'k' });
    // a shell script's $0 is the script file the kernel passed (the copy); check argv0 with a binary below
    expect(stdout.trim().split('|').slice(1)).toEqual(['a b', '-x', 'k']);
    await prepared.cleanup();
  });

  it('sets argv[0] of a binary to the original path', async () => {
    const prepared = await prepareProgram('/bin/sh', scratch.dir);
    const { stdout } = await runCaptured(prepared.copyPath, '/original/path/sh', ['-c', 'echo "$0"']);
    // `sh -c` reports its own argv[0] as $0
    expect(stdout.trim()).toBe('/original/path/sh');
    await prepared.cleanup();
  });
});

describe('exit status', () => {
  it('passes the program exit code through', async () => {
    const path = script('exit7', 'exit 7');
    const prepared = await prepareProgram(path, scratch.dir);
    expect((await runCaptured(prepared.copyPath, path, [])).status).toBe(7);
    await prepared.cleanup();
  });

  it('is 128+N when the program dies from signal N', async () => {
    const path = script('killself', 'kill -TERM $$');
    const prepared = await prepareProgram(path, scratch.dir);
    expect((await runCaptured(prepared.copyPath, path, [])).status).toBe(128 + 15);
    expect(exitStatus(null, 'SIGKILL')).toBe(137);
    await prepared.cleanup();
  });

  it('forwards SIGTERM received by the agent to the program and cleans up at once', async () => {
    const path = script('sleeper', 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.05; done');
    const prepared = await prepareProgram(path, scratch.dir);
    let cleaned = 0;
    const outFile = join(scratch.dir, 'sleeper.out');
    const fd = openSync(outFile, 'w');
    const running = await runProgram({ file: prepared.copyPath, argv0: path, args: [], env: { PATH: process.env.PATH }, stdio: ['ignore', fd, 'inherit'], cleanup: () => { cleaned++; prepared.cleanupSync(); } });
    while (!readFileSync(outFile, 'utf8').includes('ready')) await new Promise((r) => setTimeout(r, 20));
    process.emit('SIGTERM', 'SIGTERM'); // as if the agent had received it
    expect(cleaned).toBe(1);
    expect(await running.exited).toBe(3);
    closeSync(fd);
    expect(readFileSync(outFile, 'utf8')).toContain('got-term');
    expect(cleaned).toBe(1);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('reports exec_failed when the copy cannot be executed', async () => {
    const path = join(scratch.dir, 'bad-interpreter');
    writeFileSync(path, '#!/nonexistent/interpreter\n', { mode: 0o755 });
    const prepared = await prepareProgram(path, scratch.dir);
    let cleaned = false;
    await expect(runProgram({ file: prepared.copyPath, argv0: path, args: [], env: {}, stdio: 'ignore', cleanup: () => { cleaned = true; } }))
      .rejects.toMatchObject({ code: 'exec_failed' });
    expect(cleaned).toBe(true);
    await prepared.cleanup();
  });
});
