/** `keyanchor audit verify [--key PUB]… [--against CHECKPOINT]`: the whole trail, exit 3 naming the first bad record. */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { verifyTrail, type TrailReport } from '../../audit/verify.js';
import { p256PublicKey } from '../../custody/auditSigner.js';
import { EXIT, fail } from '../context.js';
import { emit, outputFormat, withOutput } from '../output.js';
import { readWitnessed, withStore } from './common.js';

/** The first problem, as one line: the log entry, the chain and record, or the witnessed checkpoint. */
export function firstProblem(where: string, r: TrailReport): string | undefined {
  if (r.log.brokenAt !== undefined) return `${where}: the checkpoint log breaks at entry ${r.log.brokenAt}: ${r.log.why}`;
  const c = r.chains.find((x) => x.brokenAt !== undefined);
  if (c) return `${where}: chain ${c.chainId} breaks at record ${c.brokenAt}: ${c.why}`;
  if (r.against && !r.against.ok) return `${where}: against the witnessed checkpoint (entry ${r.against.log}): ${r.against.why}`;
  return undefined;
}

function summary(where: string, r: TrailReport, keys: number): string {
  const events = [...r.events].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [`${where}: ${r.records} record(s) in ${r.chains.length} chain(s), all intact${events ? ` (${events})` : ''}`];
  const log = r.log.entries === 0 ? 'no checkpoints yet' : `${r.log.entries} checkpoint-log entries (${r.log.first}–${r.log.head})`;
  lines.push(keys ? `${log}, every signature verified with the ${keys} key(s) given` : `${log}; signatures NOT checked (give the audit public key with --key): a rewritten trail would pass`);
  if (r.log.anchor) lines.push(`pruned: entries up to ${r.log.anchor.body.retired.log} retired by the anchor at entry ${r.log.anchor.n}`);
  lines.push(r.uncovered ? `${r.uncovered} record(s) are past their chain's last checkpoint: no signature covers them yet` : 'every record is covered by a checkpoint');
  if (r.against) lines.push(`the store holds the witnessed checkpoint (entry ${r.against.log})`);
  return lines.join('\n');
}

const toJson = (r: TrailReport) => ({
  intact: r.intact,
  records: r.records,
  uncovered: r.uncovered,
  events: Object.fromEntries(r.events),
  log: { entries: r.log.entries, first: r.log.first ?? null, head: r.log.head ?? null, signaturesChecked: r.log.signaturesChecked, brokenAt: r.log.brokenAt ?? null, why: r.log.why ?? null, anchor: r.log.anchor?.n ?? null },
  chains: r.chains.map((c) => ({ chain: c.chainId, records: c.records, last: c.last, covered: c.covered, brokenAt: c.brokenAt ?? null, why: c.why ?? null })),
  against: r.against ?? null,
});

export function verifyCommand(): Command {
  const cmd = new Command('verify')
    .description('check the checkpoint log and every writer\'s chain; with --key, every signature; with --against, that the store still holds a witnessed checkpoint. Exit 3 naming the first bad record')
    .addOption(new Option('--key <pem>', 'the audit public key (from `keyanchor audit key`); repeatable').argParser((v: string, prev: string[] = []) => [...prev, v]))
    .option('--against <file>', 'a witnessed checkpoint: a witness file (JSON lines), or a checkpoint text with its .sig beside it');
  withOutput(cmd).action((o: { key?: string[]; against?: string }, c: Command) =>
    withStore(c, async (store) => {
      const keys = (o.key ?? []).map((f) => {
        try {
          return p256PublicKey(readFileSync(f));
        } catch (e) {
          fail(`--key ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not an EC P-256 public key (PEM)'}`, EXIT.usage);
        }
      });
      const report = await verifyTrail(store.read, { keys, ...(o.against ? { against: readWitnessed(o.against) } : {}) });
      const problem = firstProblem(store.where, report);
      // Text: the problem alone, on stderr. JSON: the whole report on stdout, then the problem.
      if (problem && outputFormat(c) === 'text') fail(problem, EXIT.invalid);
      emit(c, toJson(report), () => summary(store.where, report, keys.length));
      if (problem) fail(problem, EXIT.invalid);
    }),
  );
  return cmd;
}
