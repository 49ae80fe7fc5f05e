/** The `keyanchor` command tree: examples for every command, config discovery order and wording. */
import { describe, expect, it } from 'vitest';
import { describeSource, locateConfig, SYSTEM_CONFIG } from '../../../src/cli/context.js';
import { EXAMPLES } from '../../../src/cli/examples.js';
import { buildProgram, commandPaths } from '../../../src/cli/program.js';

describe('keyanchor commands', () => {
  it('every command has examples in its help, and every example names a command', () => {
    const paths = commandPaths(buildProgram());
    expect(paths.length).toBeGreaterThan(15);
    for (const p of paths) expect(EXAMPLES[p], `examples for "${p}"`).toMatch(/\S/);
    expect(Object.keys(EXAMPLES).filter((p) => !paths.includes(p))).toEqual([]);
  });

  it('--help ends with the examples', () => {
    let out = '';
    const program = buildProgram();
    const serve = program.commands.find((c) => c.name() === 'serve')!;
    serve.configureOutput({ writeOut: (t) => void (out += t) });
    serve.outputHelp();
    expect(out).toContain(`\nExamples:${EXAMPLES['keyanchor serve']}`);
  });
});

describe('config discovery', () => {
  const none = () => false;
  it('--config, then KEYANCHOR_CONFIG, then /etc/keyanchor/config.yaml when it exists, then the embedded defaults', () => {
    expect(locateConfig('a.yaml', { KEYANCHOR_CONFIG: 'b.yaml' }, () => true)).toEqual({ file: 'a.yaml', from: 'flag' });
    expect(locateConfig(undefined, { KEYANCHOR_CONFIG: 'b.yaml' }, () => true)).toEqual({ file: 'b.yaml', from: 'env' });
    expect(locateConfig(undefined, {}, (p) => p === SYSTEM_CONFIG)).toEqual({ file: SYSTEM_CONFIG, from: 'system' });
    expect(locateConfig(undefined, {}, none)).toEqual({ file: undefined, from: 'defaults' });
  });

  it('says which config and state dir are used', () => {
    expect(describeSource({ file: '/etc/keyanchor/config.yaml', from: 'system' }, { stateDir: '/var/lib/keyanchor' }))
      .toBe('keyanchor: using config /etc/keyanchor/config.yaml, state dir /var/lib/keyanchor');
    expect(describeSource({ file: 'b.yaml', from: 'env' }, { stateDir: '/s' })).toBe('keyanchor: using config b.yaml (from KEYANCHOR_CONFIG), state dir /s');
    expect(describeSource({ file: undefined, from: 'defaults' }, { stateDir: '/w/state' }))
      .toBe('keyanchor: using the embedded defaults (no --config, KEYANCHOR_CONFIG or /etc/keyanchor/config.yaml), state dir /w/state');
  });
});
