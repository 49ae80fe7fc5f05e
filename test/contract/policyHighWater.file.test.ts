import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileHighWater, HIGH_WATER_FILE, HighWaterFileError } from '../../src/policy/highWaterFile.js';
import { policyHighWaterContract } from './policyHighWater.contract.js';

policyHighWaterContract('file in the state directory', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-highwater-'));
  return { open: async () => new FileHighWater(dir), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

describe('the file backend fails closed', () => {
  it('a corrupt mark file refuses every read and advance instead of starting over', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-highwater-'));
    try {
      writeFileSync(path.join(dir, HIGH_WATER_FILE), '{"version": 3, "manifestSha256": "tru');
      const hw = new FileHighWater(dir);
      await expect(hw.get()).rejects.toThrow(HighWaterFileError);
      await expect(hw.advance({ version: 1, manifestSha256: 'a'.repeat(64) })).rejects.toThrow(/is corrupt; restore it from a backup/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
