/**
 * Signed checkpoints over the trail, on a real store: what `audit verify` finds when an attacker
 * with write access to the store edits, inserts, reorders, deletes or truncates records, rewrites
 * or cuts the checkpoint log, or replaces the store; sweeps of chains whose writer died; prune.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { pruneTrail } from '../../../src/audit/prune.js';
import { markWitnessed } from '../../../src/store/auditCheckpoints.js';
import { appendAudit, GENESIS, recordHash } from '../../../src/store/audit.js';
import { makeTrail, rehashFrom, type Trail } from '../../helpers/auditTrail.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

const broken = (r: Awaited<ReturnType<Trail['verify']>>) => {
  const c = r.chains.find((x) => x.brokenAt !== undefined);
  return r.log.brokenAt !== undefined ? { log: r.log.brokenAt, why: r.log.why } : c ? { chain: c.chainId, record: c.brokenAt, why: c.why } : r.against && !r.against.ok ? { against: r.against.log, why: r.against.why } : undefined;
};

export function auditTrailContract(make: MakeStore): void {
  describe('audit checkpoints and verification', () => {
    const opened = new Opened();
    const trails: Trail[] = [];
    afterEach(async () => {
      await opened.closeAll();
      for (const t of trails.splice(0)) t.cleanup();
    });

    /** 20 records on one writer chain, checkpointed at 15 (witnessed), 5 more uncovered. */
    async function trail(): Promise<{ t: Trail; chain: string; cp: number }> {
      const h = await make();
      const t = await makeTrail(opened.add(h.store), h.clock);
      trails.push(t);
      const chain = await t.write(15);
      const run = await t.checkpointer.checkpointNow();
      await t.checkpointer.close(); // the witness has appended; later records stay uncovered
      const cp = run.entries.find((e) => e.chainId === chain)!;
      await t.write(5);
      return { t, chain, cp: cp.seq! };
    }

    it('an untouched trail verifies: signatures, every link, covered up to the checkpoint, the witness matches', async () => {
      const { t, cp } = await trail();
      const r = await t.verify({ against: t.witnessed() });
      expect(broken(r)).toBeUndefined();
      expect(r.intact).toBe(true);
      expect(r.uncovered).toBe(5);
      expect(r.log.signaturesChecked).toBe(true);
      expect(r.against).toEqual({ log: r.log.head, ok: true });
      expect(cp).toBeGreaterThanOrEqual(15);
    });

    it('finds an edited record, and names it', async () => {
      const { t, chain, cp } = await trail();
      await t.store.transaction((tx) => tx.run("UPDATE audit SET body = REPLACE(body, '\"n\":7,', '\"n\":70,') WHERE chain_id = $1", [chain]));
      expect(broken(await t.verify())).toEqual({ chain, record: cp - 8, why: 'its content does not match its hash' });
    });

    it('finds an edited record whose chain was rehashed after it, at the record the checkpoint signed', async () => {
      const { t, chain, cp } = await trail();
      await t.store.transaction((tx) => tx.run("UPDATE audit SET body = REPLACE(body, '\"n\":7,', '\"n\":70,') WHERE chain_id = $1", [chain]));
      await rehashFrom(t.store, chain, cp - 8);
      const r = await t.verify();
      expect(broken(r)).toMatchObject({ chain, record: cp, why: expect.stringMatching(/^it is not the record checkpoint \d+ signed$/) });
    });

    it('finds an inserted, a reordered and a deleted record', async () => {
      const a = await trail();
      // Insert: the records after seq 5 move up one, and a forged record takes seq 6.
      await a.t.store.transaction(async (tx) => {
        await tx.run('UPDATE audit SET seq = seq + 1000 WHERE chain_id = $1 AND seq > 5', [a.chain]);
        await tx.run('UPDATE audit SET seq = seq - 999 WHERE chain_id = $1 AND seq > 1000', [a.chain]);
        const [r5] = await tx.all('SELECT hash FROM audit WHERE chain_id = $1 AND seq = 5', [a.chain]);
        const row = { chainId: a.chain, seq: 6, at: 1, prev: String(r5!.hash), body: '{"event":"release","forged":true}' };
        await tx.run('INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) VALUES ($1, 6, 1, $2, $3, $4, $5)', [a.chain, 'release', row.prev, recordHash(row), row.body]);
      });
      expect(broken(await a.t.verify())).toEqual({ chain: a.chain, record: 7, why: 'its prev is not the hash of the record before it' });

      const b = await trail();
      await b.t.store.transaction(async (tx) => {
        await tx.run('UPDATE audit SET seq = 1000 WHERE chain_id = $1 AND seq = 8', [b.chain]);
        await tx.run('UPDATE audit SET seq = 8 WHERE chain_id = $1 AND seq = 9', [b.chain]);
        await tx.run('UPDATE audit SET seq = 9 WHERE chain_id = $1 AND seq = 1000', [b.chain]);
      });
      expect(broken(await b.t.verify())).toEqual({ chain: b.chain, record: 8, why: 'its prev is not the hash of the record before it' });

      const c = await trail();
      await c.t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1 AND seq = 4', [c.chain]));
      expect(broken(await c.t.verify())).toEqual({ chain: c.chain, record: 4, why: 'record 4 is missing (the next is 5)' });
    });

    it('finds records cut from the end of a chain up to its last checkpoint, and a chain removed whole', async () => {
      const a = await trail();
      await a.t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1 AND seq > $2', [a.chain, a.cp - 3]));
      expect(broken(await a.t.verify())).toMatchObject({ chain: a.chain, record: a.cp - 2, why: expect.stringMatching(new RegExp(`^the chain ends at record ${a.cp - 3}, but checkpoint \\d+ signed ${a.cp}: records ${a.cp - 2}–${a.cp} were removed \\(truncated\\)$`)) });

      const b = await trail();
      await b.t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1', [b.chain]));
      expect(broken(await b.t.verify())).toMatchObject({ chain: b.chain, record: 1 });
    });

    it('records cut after the last checkpoint are not found by the store alone (the window); a checkpoint log cut back is found against the witness', async () => {
      const { t, chain, cp } = await trail();
      await t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1 AND seq > $2', [chain, cp]));
      expect(broken(await t.verify())).toBeUndefined(); // the 5 uncovered records: nothing signed them
      // Cutting the log's newest entry and everything it covered is only seen against a witnessed copy.
      const head = Number((await t.store.read.all('SELECT MAX(n) AS n FROM audit_checkpoints'))[0]!.n);
      await t.store.transaction((tx) => tx.run('DELETE FROM audit_checkpoints WHERE n = $1', [head]));
      await t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1', [chain]));
      expect(broken(await t.verify())).toBeUndefined();
      expect(broken(await t.verify({ against: t.witnessed() }))).toEqual({
        against: head, why: `the store's checkpoint log ends at entry ${head - 1 || 0}: the witnessed entry ${head} is missing (the store was rolled back, replaced or emptied)`,
      });
    });

    it('finds a checkpoint entry removed from the middle of the log, an edited one, and one signed by another key', async () => {
      const h = await make();
      const t = await makeTrail(opened.add(h.store), h.clock);
      trails.push(t);
      for (let i = 0; i < 3; i++) {
        await t.write(3);
        await t.checkpointer.checkpointNow();
      }
      const ns = (await t.store.read.all('SELECT n FROM audit_checkpoints ORDER BY n')).map((r) => Number(r.n));
      expect(broken(await t.verify())).toBeUndefined();
      const mid = ns[1]!;
      const saved = (await t.store.read.all('SELECT * FROM audit_checkpoints WHERE n = $1', [mid]))[0]!;
      await t.store.transaction((tx) => tx.run('DELETE FROM audit_checkpoints WHERE n = $1', [mid]));
      expect(broken(await t.verify())).toEqual({ log: mid + 1, why: `expected entry ${mid}, found ${mid + 1}` });

      const forged = String(saved.text).replace(/^seq (\d+)$/m, (_, s: string) => `seq ${Number(s) - 1}`);
      await t.store.transaction((tx) => tx.run('INSERT INTO audit_checkpoints (n, kind, chain_id, seq, hash, at, text, digest, sig, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', [
        mid, saved.kind, saved.chain_id, Number(saved.seq) - 1, saved.hash, saved.at, forged, saved.digest, saved.sig, saved.key_id]));
      expect(broken(await t.verify())).toEqual({ log: mid, why: 'its columns do not match its text' });

      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
      expect(broken(await t.verify({ keys: [other] }))).toMatchObject({ log: ns[0], why: expect.stringMatching(/^it is signed by key [0-9a-f]{16}…, which is not one of the keys given$/) });
      await t.checkpointer.close();
    });

    it('a replaced or emptied store is found against the witnessed checkpoint', async () => {
      const { t } = await trail();
      const witnessed = t.witnessed();
      const fresh = await make();
      const other = await makeTrail(opened.add(fresh.store), fresh.clock);
      trails.push(other);
      await other.write(4);
      await other.checkpointer.checkpointNow();
      const r = await other.verify({ keys: [t.key], against: witnessed });
      expect(r.intact).toBe(false);
      expect(r.against?.why).toMatch(/^the witnessed checkpoint is of store \S+; this store is \S+: it was replaced or emptied$/);

      await t.store.transaction(async (tx) => {
        await tx.run('DELETE FROM audit_checkpoints');
        await tx.run('DELETE FROM audit_terms');
        await tx.run('DELETE FROM audit');
      });
      expect(broken(await t.verify())).toBeUndefined(); // an empty trail, alone, is consistent
      expect(broken(await t.verify({ against: witnessed }))).toMatchObject({ why: expect.stringMatching(/^the store's checkpoint log ends at entry 0: the witnessed entry \d+ is missing/) });
      await other.checkpointer.close();
    });

    // Where every store shares one writer (serve --workers), a store that dies leaves no chain of its own behind.
    it('sweeps a chain whose writer died before its checkpoint, after checking its links; refuses one that does not link up', async (ctx) => {
      const h = await make();
      if (h.writersOfTheirOwn === false) return ctx.skip();
      const t = await makeTrail(opened.add(h.store), h.clock);
      trails.push(t);
      const dead = opened.add(await h.another());
      let deadChain = '';
      for (let i = 0; i < 4; i++) deadChain = (await dead.transaction((tx) => appendAudit(tx, { event: 'key.create', key: `k/${i}` }, h.clock.now()))).chainId;
      await dead.close(); // as if SIGKILLed: no final checkpoint
      h.clock.advance(10 * 60_000);
      const run = await t.checkpointer.checkpointNow();
      const swept = run.entries.find((e) => e.chainId === deadChain)!;
      expect(swept.text).toMatch(/\nbasis sweep\n/);
      expect(swept.seq).toBe(4);
      const r = await t.verify();
      expect(r.chains.find((c) => c.chainId === deadChain)).toMatchObject({ last: 4, covered: 4 });

      // Another dead writer whose second record no longer links to its first: not signed.
      const writer = opened.add(await h.another());
      await writer.transaction((tx) => appendAudit(tx, { event: 'x' }, 1));
      await writer.transaction((tx) => appendAudit(tx, { event: 'x' }, 2));
      const chainX = writer.committedHeads()[0]!.chainId;
      await writer.close();
      await t.store.transaction((tx) => tx.run('UPDATE audit SET prev = $1 WHERE chain_id = $2 AND seq = 2', [GENESIS, chainX]));
      const third = await t.checkpointer.checkpointNow();
      expect(third.refused).toEqual([{ chain: chainX, why: 'record 2 does not link to the record before it (record 1)' }]);
      await t.checkpointer.close();
    });

    it('prune retires records up to a witnessed checkpoint behind a signed anchor; what remains verifies, and keeps verifying as the trail grows', async () => {
      const h = await make();
      const t = await makeTrail(opened.add(h.store), h.clock, { witness: false });
      trails.push(t);
      const chain = await t.write(10);
      const first = await t.checkpointer.checkpointNow();
      await t.write(10);
      await t.checkpointer.checkpointNow();
      await t.write(3);
      const point = first.entries.find((e) => e.chainId === chain)!;
      await expect(pruneTrail(t.writer, { before: h.clock.now(), actor: 'test' })).rejects.toMatchObject({ code: 'nothing_witnessed' });
      await t.store.transaction((tx) => markWitnessed(tx, point.n, 'file:/w', h.clock.now()));
      const termsBefore = Number((await t.store.read.all('SELECT COUNT(*) AS n FROM audit_terms WHERE chain_id = $1', [chain]))[0]!.n);
      const r = await pruneTrail(t.writer, { before: h.clock.now(), actor: 'test' });
      expect(r).toMatchObject({ retiredThrough: point.n, records: point.seq });
      const left = (await t.store.read.all('SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM audit WHERE chain_id = $1', [chain]))[0]!;
      expect(Number(left.lo)).toBe(point.seq! + 1);
      expect(Number((await t.store.read.all('SELECT COUNT(*) AS n FROM audit_terms WHERE chain_id = $1 AND seq <= $2', [chain, point.seq]))[0]!.n)).toBe(0);
      expect(Number((await t.store.read.all('SELECT COUNT(*) AS n FROM audit_terms WHERE chain_id = $1', [chain]))[0]!.n)).toBeLessThan(termsBefore);
      const after = await t.verify();
      expect(broken(after)).toBeUndefined();
      expect(after.log.anchor?.n).toBe(r.anchor.n);
      expect(after.log.first).toBe(point.n + 1);
      // Cutting what is left before the anchor's cut is still found.
      await t.write(4);
      await t.checkpointer.checkpointNow();
      expect(broken(await t.verify())).toBeUndefined();
      await t.store.transaction((tx) => tx.run('DELETE FROM audit WHERE chain_id = $1 AND seq = $2', [chain, point.seq! + 1]));
      expect(broken(await t.verify())).toEqual({ chain, record: point.seq! + 1, why: `record ${point.seq! + 1} is missing (the next is ${point.seq! + 2})` });
      await t.checkpointer.close();
    });
  });
}
