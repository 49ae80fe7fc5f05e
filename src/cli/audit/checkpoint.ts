/**
 * `keyanchor audit checkpoint` (sign checkpoints now: sweep every open chain, hand the entries to
 * the configured file and webhook witnesses) and `keyanchor audit key` (the public key verifiers pin).
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { Checkpointer } from '../../audit/checkpointer.js';
import { witnessLine, createWitnesses } from '../../audit/witness/index.js';
import { createLogger } from '../../log.js';
import { logHead, logEntry } from '../../store/auditCheckpoints.js';
import { EXIT, fail } from '../context.js';
import { emit, withOutput } from '../output.js';
import { withSigner } from './common.js';

export function checkpointCommand(): Command {
  const cmd = new Command('checkpoint')
    .description('sign checkpoints now of every chain with records past its last checkpoint (verified first), and send them to the file and webhook witnesses; exit 3 if a chain does not link up')
    .option('--out <prefix>', 'also write the newest checkpoint-log entry as <prefix>.txt and its DER signature as <prefix>.sig (for openssl)');
  withOutput(cmd).action((o: { out?: string }, c: Command) =>
    withSigner(c, async (w, config) => {
      // The log witness writes to this process's stdout: only the witnesses that reach outside it.
      const witnesses = createWitnesses(config.audit.witnesses.filter((x) => x.kind !== 'log'), { clock: w.clock, log: createLogger('warn', process.stderr) });
      const cp = new Checkpointer({
        ...w, policy: () => null, everyRecords: config.audit.checkpoint.everyRecords, everyMs: config.audit.checkpoint.everySeconds * 1000,
        sweepMs: config.audit.checkpoint.sweepSeconds * 1000, witnesses, onError: () => undefined,
      });
      const run = await cp.checkpointNow();
      await cp.close(10_000);
      if (o.out) {
        const head = await logHead(w.store.read);
        const entry = head && (await logEntry(w.store.read, head.n));
        if (!entry) fail('the checkpoint log is empty: there is no record to checkpoint yet');
        writeFileSync(`${o.out}.txt`, entry.text);
        writeFileSync(`${o.out}.sig`, entry.sig);
      }
      const out = { entries: run.entries.map(witnessLine), refused: run.refused, witnesses: witnesses.map((x) => ({ witness: x.name, ...x.stats() })) };
      emit(c, out, (d) => [
        d.entries.length ? d.entries.map((e) => `entry ${e.log}: ${e.text.split('\n').slice(4, 7).join(', ')}`).join('\n') : 'nothing new to checkpoint',
        ...d.refused.map((r) => `refused chain ${r.chain}: ${r.why}`),
        ...d.witnesses.map((x) => `witness ${x.witness}: ${x.witnessed} of ${x.sent} entries held${x.failed ? `, ${x.failed} failed` : ''}`),
      ].join('\n'));
      if (run.refused.length) fail(`${run.refused.length} chain(s) do not link up from their last checkpoint (run \`keyanchor audit verify\`)`, EXIT.invalid);
    }),
  );
  return cmd;
}

export function keyCommand(): Command {
  return new Command('key')
    .description('print the audit signing public key (PEM), what `audit verify --key` and openssl take; made for a store that has none yet')
    .option('--out <file>', 'write it to this file instead')
    .action((o: { out?: string }, c: Command) =>
      withSigner(c, async (w) => {
        if (o.out) writeFileSync(o.out, w.signer.publicKeyPem);
        else process.stdout.write(w.signer.publicKeyPem);
        process.stderr.write(`keyanchor: audit signing key ${w.signer.keyId} (${w.signer.kind} custody)\n`);
      }),
    );
}
