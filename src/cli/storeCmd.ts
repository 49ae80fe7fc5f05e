import { Command } from 'commander';
import { systemClock } from '../clock.js';
import { META, getMeta } from '../store/meta.js';
import { migrate } from '../store/migrate.js';
import { SCHEMA_VERSION } from '../store/migrations.js';
import { openDriver, storeWhere } from '../store/index.js';
import { schemaVersion } from '../store/migrate.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';
import { emit, withOutput } from './output.js';
import type { Config } from '../config.js';

function config(cmd: Command): Config {
  try {
    return configFrom(cmd);
  } catch (e) {
    reportConfigError(e);
  }
}

const failWith = (e: unknown): never => {
  const code = (e as { code?: unknown }).code;
  fail(`${typeof code === 'string' ? `${code}: ` : ''}${e instanceof Error ? e.message : String(e)}`, EXIT.failure);
};

export function storeCommand(): Command {
  const store = new Command('store').description('the state store (SQLite file or PostgreSQL database)');
  withOutput(store.command('migrate'), 'text')
    .description('bring the store to the schema this keyanchor knows (idempotent; creates a SQLite file if needed)')
    .action(async (_o: unknown, cmd: Command) => {
      const c = config(cmd);
      try {
        const driver = await openDriver(c.store, { clock: systemClock, create: true });
        try {
          const { from, to } = await migrate(driver);
          emit(cmd, { where: storeWhere(c.store), from, to }, (d) => (d.from === d.to ? `${d.where}: schema ${d.to}, up to date` : `${d.where}: schema ${d.from} → ${d.to}`));
        } finally {
          await driver.close();
        }
      } catch (e) {
        failWith(e);
      }
    });
  withOutput(store.command('status'), 'json')
    .description('the store\'s kind, schema version and KEK identity')
    .action(async (_o: unknown, cmd: Command) => {
      const c = config(cmd);
      try {
        const driver = await openDriver(c.store, { clock: systemClock });
        try {
          const v = await schemaVersion(driver.reader);
          const kekId = v > 0 ? await getMeta(driver.reader, META.kekId) : undefined;
          emit(cmd, { kind: c.store.kind, where: storeWhere(c.store), schema: v, knows: SCHEMA_VERSION, kekId: kekId ?? null }, (d) =>
            `${d.kind} store ${d.where}: schema ${d.schema} (this keyanchor knows ${d.knows}), KEK ${d.kekId ?? 'none recorded yet'}`);
        } finally {
          await driver.close();
        }
      } catch (e) {
        failWith(e);
      }
    });
  return store;
}
