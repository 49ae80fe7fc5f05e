/** `keyanchor audit search` and `keyanchor audit tail [--follow]`. */
import { existsSync, readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { recordLine, showRecord, toQuery, type SearchFilter } from '../../audit/search.js';
import { writeFileAtomic } from '../../fsAtomic.js';
import { indexAudit } from '../../store/auditIndex.js';
import { formatCursor, parseCursor, searchAudit } from '../../store/auditSearch.js';
import { formatTailCursor, parseTailCursor, tailPage, TAIL_START, type TailCursor } from '../../store/auditTail.js';
import { EXIT, fail } from '../context.js';
import { emit, withOutput } from '../output.js';
import { parseWhen, withStore } from './common.js';

const int = (name: string, max: number) => (v: string) => {
  if (!/^[1-9]\d{0,6}$/.test(v) || Number(v) > max) fail(`${name}: a whole number from 1 to ${max}`, EXIT.usage);
  return Number(v);
};

export function searchCommand(): Command {
  const cmd = new Command('search')
    .description('records by key, node, software entry, decision (event), code, actor and time, oldest first, a page at a time (indexed)')
    .option('--key <name>', 'a key a release asked for, or a lifecycle record names')
    .option('--node <id>', 'the node: its first SAN URI, else its subject')
    .option('--software <name>', 'a software entry of the policy')
    .option('--decision <event>', 'release, refusal, refusal.unauthenticated, key.create, policy.load, admin.forbidden, …')
    .option('--code <code>', 'a refusal code (also each code a refusal.unauthenticated record counts)')
    .option('--actor <principal>', 'who did it: cli:<user>, jwt:sub:<sub>, cert:subject:<DN>')
    .option('--since <time>', 'ISO 8601, or an age: 90s, 30m, 24h, 7d')
    .option('--until <time>', 'ISO 8601, or an age (exclusive)')
    .addOption(new Option('--limit <n>', 'records per page (at most 10000)').default(100).argParser(int('--limit', 10_000)))
    .option('--after <cursor>', 'continue after this cursor (the `next` of the page before)');
  withOutput(cmd).action((o: SearchFilter & { since?: string; until?: string; limit: number; after?: string }, c: Command) =>
    withStore(c, async (store) => {
      const now = Date.now();
      const after = o.after === undefined ? undefined : (parseCursor(o.after) ?? fail(`--after: "${o.after}" is not a search cursor`, EXIT.usage));
      const filter: SearchFilter = {
        ...o,
        ...(o.since !== undefined ? { since: parseWhen(o.since, now, '--since') } : {}),
        ...(o.until !== undefined ? { until: parseWhen(o.until, now, '--until') } : {}),
      } as SearchFilter;
      // The index follows the trail; bring it up to date first (after an upgrade, the first search indexes the older records).
      const indexed = await indexAudit(store.read, (fn) => store.transaction(fn));
      if (indexed > 10_000) process.stderr.write(`keyanchor: indexed ${indexed} record(s) for search first\n`);
      const page = await searchAudit(store.read, toQuery(filter, o.limit, after));
      const records = page.rows.map((r) => showRecord(r));
      const next = page.next ? formatCursor(page.next) : null;
      emit(c, { records, next }, (d) => [...d.records.map(recordLine), ...(d.next ? [`(more: --after ${d.next})`] : [])].join('\n') || '(no records)');
    }),
  );
  return cmd;
}

export function tailCommand(): Command {
  return new Command('tail')
    .description('every record in commit order as JSON lines (for a SIEM), from a cursor; --follow keeps waiting for new ones')
    .option('--after <cursor>', 'start after this cursor (each line carries its own)')
    .option('--cursor-file <file>', 'read the start cursor from this file, and write the cursor there after each page written')
    .option('-f, --follow', 'wait for new records until stopped (SIGINT/SIGTERM)')
    .addOption(new Option('--interval <ms>', 'with --follow, how often to look for new records').default(1000).argParser(int('--interval', 600_000)))
    .addOption(new Option('--page <n>', 'records read at a time').default(1000).argParser(int('--page', 10_000)))
    .action((o: { after?: string; cursorFile?: string; follow?: boolean; interval: number; page: number }, c: Command) =>
      withStore(c, async (store) => {
        const stored = o.cursorFile && existsSync(o.cursorFile) ? readFileSync(o.cursorFile, 'utf8') : undefined;
        const given = o.after ?? stored;
        let cursor: TailCursor = given === undefined ? TAIL_START : (parseTailCursor(given) ?? fail(`"${given.trim()}" is not a tail cursor`, EXIT.usage));
        let stop = false;
        const onSignal = () => (stop = true);
        process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
        try {
          while (!stop) {
            const rows = await tailPage(store.read, cursor, o.page);
            if (rows.length) {
              const lines = rows.map((r) => JSON.stringify({ cursor: formatTailCursor(r.cursor), ...showRecord(r), prev: r.prev }));
              await new Promise<void>((resolve) => process.stdout.write(`${lines.join('\n')}\n`, () => resolve()));
              cursor = rows.at(-1)!.cursor;
              if (o.cursorFile) writeFileAtomic(o.cursorFile, `${formatTailCursor(cursor)}\n`, 0o600);
            }
            if (rows.length < o.page) {
              if (!o.follow) break;
              await new Promise((r) => setTimeout(r, o.interval));
            }
          }
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        }
      }),
    );
}
