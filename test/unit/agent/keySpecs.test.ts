import { describe, expect, it } from 'vitest';
import { parseKeySpec, parseKeySpecs } from '../../../attest-agent/src/keySpecs.js';

describe('--key specs', () => {
  it('parses the env, versioned env and file forms', () => {
    expect(parseKeySpec('billing/db=DB_KEY', true)).toEqual({ name: 'billing/db', destination: { kind: 'env', variable: 'DB_KEY' } });
    expect(parseKeySpec('billing/db@3=DB_KEY', true)).toEqual({ name: 'billing/db', version: 3, destination: { kind: 'env', variable: 'DB_KEY' } });
    expect(parseKeySpec('billing/tls:file=/dev/shm/a=b.key', true)).toEqual({ name: 'billing/tls', destination: { kind: 'file', path: '/dev/shm/a=b.key' } });
    expect(parseKeySpec('billing/tls@2:file=/dev/shm/k', true)).toMatchObject({ version: 2, destination: { kind: 'file' } });
    expect(parseKeySpec('billing/db@7', false)).toEqual({ name: 'billing/db', version: 7, destination: { kind: 'none' } });
  });

  it.each(['billing/db', 'Billing/db=X', 'nodash=X', 'a/b=1BAD', 'a/b@0=X', 'a/b@x=X', 'a/b:file=', 'a/b:dir=/x'])('rejects %s as usage', (spec) => {
    expect(() => parseKeySpec(spec, true)).toThrow(expect.objectContaining({ code: 'usage' }));
  });

  it('rejects duplicate names and destinations, and an empty list', () => {
    expect(() => parseKeySpecs(['a/b=X', 'a/b=Y'], true)).toThrow(/twice/);
    expect(() => parseKeySpecs(['a/b=X', 'a/c=X'], true)).toThrow(/same env:X/);
    expect(() => parseKeySpecs([], true)).toThrow(/at least one/);
  });
});
