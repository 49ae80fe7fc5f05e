import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { verifyJsonl } from '../audit/jsonl.js';
import { verifyTrail } from '../audit/verify.js';
import { systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { GENESIS, insertAuditRow } from '../store/audit.js';
import { openStore, type StateStore } from '../store/index.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

/** Opens the configured store (it must exist: these commands create nothing) and runs `fn`. */
async function withStore(cmd: Command, fn: (store: StateStore, config: Config) => Promise<void>): Promise<void> {
  let config: Config;
  try {
    config = configFrom(cmd);
  } catch (e) {
    reportConfigError(e);
  }
  let store: StateStore | undefined;
  try {
    store = await openStore(config.store, { clock: systemClock });
    await fn(store, config);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && e instanceof Error) fail(`${code}: ${(e as { reason?: string }).reason ?? e.message}`, EXIT.failure);
    throw e;
  } finally {
    await store?.close();
  }
}

export function auditCommand(): Command {
  const audit = new Command('audit').description('the hash-chained audit trail in the state store');
  audit
    .command('verify')
    .description('check every writer\'s hash chain in the store; exit 3 and name the first broken record if one was edited, removed or reordered')
    .action((_o: unknown, cmd: Command) =>
      withStore(cmd, async (store) => {
        const r = await verifyTrail(store.read);
        for (const c of r.chains.filter((x) => x.brokenAt !== undefined)) {
          fail(`${store.where}: chain ${c.chainId} breaks at record ${c.brokenAt}: ${c.why} (edited, removed or reordered)`, EXIT.invalid);
        }
        const summary = [...r.events].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ');
        process.stdout.write(`${store.where}: ${r.records} record(s) in ${r.chains.length} chain(s), all intact${summary ? ` (${summary})` : ''}\n`);
      }),
    );
  audit
    .command('import')
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
        process.stdout.write(`${file}: ${check.lines} record(s) verified and imported as chain ${head.chainId} (original last hash ${check.lastHash})\n`);
      }),
    );
  return audit;
}
