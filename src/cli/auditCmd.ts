import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { verifyChain } from '../audit/fileAuditLog.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

export function auditCommand(): Command {
  const audit = new Command('audit').description('the hash-chained audit trail');
  audit
    .command('verify')
    .description('check the hash chain of the audit file; exit 3 and name the first broken line if it was edited or truncated')
    .argument('[file]', 'audit file (default: audit.file from the config)')
    .action((file: string | undefined, _o: unknown, cmd: Command) => {
      let path = file;
      if (!path) {
        try {
          path = configFrom(cmd).audit.file;
        } catch (e) {
          reportConfigError(e);
        }
      }
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        fail(`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const counts = new Map<string, number>();
      const r = verifyChain(text, (rec) => counts.set(String(rec.event), (counts.get(String(rec.event)) ?? 0) + 1));
      if (r.brokenAt !== undefined) fail(`${path}: the chain breaks at line ${r.brokenAt} (edited, reordered or truncated)`, EXIT.invalid);
      const summary = [...counts].map(([k, v]) => `${k} ${v}`).join(', ');
      process.stdout.write(`${path}: ${r.lines} record(s), chain intact, last hash ${r.lastHash}${summary ? ` (${summary})` : ''}\n`);
    });
  return audit;
}
