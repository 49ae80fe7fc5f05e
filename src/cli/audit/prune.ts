/** `keyanchor audit prune --before T [--against CHECKPOINT]` and `keyanchor audit import FILE`. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { verifyJsonl } from '../../audit/jsonl.js';
import { pruneTrail, PruneRefused } from '../../audit/prune.js';
import { GENESIS, insertAuditRow } from '../../store/audit.js';
import { EXIT, fail } from '../context.js';
import { emit, withOutput } from '../output.js';
import { cliActor, parseWhen, readWitnessed, withSigner, withStore } from './common.js';

export function pruneCommand(): Command {
  const cmd = new Command('prune')
    .description('retire records up to the newest checkpoint taken before T that a witness holds, leaving a signed anchor so what remains still verifies')
    .requiredOption('--before <time>', 'ISO 8601, or an age: 90d')
    .option('--against <file>', 'retire up to this witnessed checkpoint (exported elsewhere) instead of one a configured witness confirmed');
  withOutput(cmd).action((o: { before: string; against?: string }, c: Command) =>
    withSigner(c, async (w) => {
      const before = parseWhen(o.before, Date.now(), '--before');
      try {
        const r = await pruneTrail(w, { before, ...(o.against ? { against: readWitnessed(o.against) } : {}), actor: cliActor() });
        const out = { retiredThrough: r.retiredThrough, anchor: r.anchor.n, entries: r.entries, records: r.records, chains: r.chains };
        emit(c, out, (d) => `retired ${d.records} record(s) of ${d.chains} chain(s) and ${d.entries} checkpoint-log entries, through entry ${d.retiredThrough}; anchor at entry ${d.anchor}`);
      } catch (e) {
        if (e instanceof PruneRefused) fail(`nothing retired: ${e.message}`, e.code === 'trail_broken' ? EXIT.invalid : EXIT.failure);
        throw e;
      }
    }),
  );
  return cmd;
}

export function importCommand(): Command {
  return new Command('import')
    .argument('<file>', 'an audit.jsonl file of an earlier version')
    .description('verify the chain of an old JSON-lines audit file and copy it into the store as a chain of its own')
    .action((file: string, _o: unknown, cmd: Command) =>
      withStore(cmd, async (store) => {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (e) {
          fail(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
        }
        const lines: Array<{ rec: Record<string, unknown>; line: string }> = [];
        const check = verifyJsonl(text, (rec, line) => lines.push({ rec, line }));
        if (check.brokenAt !== undefined) fail(`${file}: the chain breaks at line ${check.brokenAt} (edited, reordered or truncated); nothing imported`, EXIT.invalid);
        const head = { chainId: `import-${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, seq: 0, hash: GENESIS };
        if ((await store.read.all('SELECT 1 AS x FROM audit WHERE chain_id = $1 LIMIT 1', [head.chainId])).length) fail(`${file} was imported before (chain ${head.chainId})`);
        for (let i = 0; i < lines.length; i += 1000) {
          await store.transaction(async (tx) => {
            for (const { rec, line } of lines.slice(i, i + 1000)) {
              const at = Date.parse(String(rec.time));
              await insertAuditRow(tx, { chainId: head.chainId, seq: head.seq + 1, at: Number.isFinite(at) ? at : 0, event: String(rec.event), prev: head.hash, body: line }, head);
            }
          });
        }
        process.stdout.write(`${file}: ${check.lines} record(s) verified and imported as chain ${head.chainId} (original last hash ${check.lastHash}); \`keyanchor audit checkpoint\` signs it\n`);
      }),
    );
}
