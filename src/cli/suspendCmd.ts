/**
 * `keyanchor suspend …`: cut a software entry, zone, key or node off from releases at run time,
 * and list, show or clear suspensions (the ones alarms set too). On the broker host it acts on the
 * store; with `--broker` through the admin API (security role). Every broker on the store
 * enforces a change within about one `store.changePollMs`.
 */
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { systemClock } from '../clock.js';
import { parseSubject, subjectOf, type SubjectKind } from '../limits/subjects.js';
import { SuspensionService, type SuspensionView } from '../limits/suspensionService.js';
import { openStore } from '../store/index.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';
import { runEither } from './dispatch.js';
import { withOutput } from './output.js';
import { adminCall, subjectPath } from './remote.js';
import { historyText, suspensionsText, suspensionText } from './views.js';

const actor = () => `cli:${userInfo().username}`;

/** Runs `fn` on a SuspensionService over the local store (which must exist: nothing is created). */
async function locally<T>(cmd: Command, fn: (s: SuspensionService) => Promise<T>): Promise<T> {
  let config;
  try {
    config = configFrom(cmd);
  } catch (e) {
    reportConfigError(e);
  }
  const store = await openStore(config.store, { clock: systemClock });
  try {
    return await fn(new SuspensionService(store, systemClock));
  } finally {
    await store.close();
  }
}

/** The canonical subject, or exit 2 saying why not. */
function subject(text: string): string {
  const p = parseSubject(text);
  if ('problem' in p) fail(`invalid subject "${text}": ${p.problem}`, EXIT.usage);
  return p.subject;
}

const KIND_HELP: Record<SubjectKind, string> = {
  software: 'a software entry of the policy, by name',
  zone: 'a zone of the policy, by name',
  key: 'a key, owner/purpose',
  node: 'a node: a SAN URI of its certificate (spiffe://…), sha256:HEX (its certificate) or serial:HEX',
};

export function suspendCommand(): Command {
  const cmd = new Command('suspend').description('cut a software entry, zone, key or node off from releases; list, show and clear suspensions');
  for (const kind of Object.keys(KIND_HELP) as SubjectKind[]) {
    withOutput(cmd.command(kind), 'text')
      .argument('<name>', KIND_HELP[kind])
      .requiredOption('--reason <text>', 'why (recorded with the suspension and in the audit trail)')
      .description(`suspend ${KIND_HELP[kind]} (idempotent: an active suspension stays as it is)`)
      .action(async (name: string, o: { reason: string }, c: Command) => {
        const p = subjectOf(kind, name);
        if ('problem' in p) fail(`invalid ${kind} "${name}": ${p.problem}`, EXIT.usage);
        await runEither(c, {
          remote: (r) => adminCall(r, 'POST', '/suspensions', { subject: p.subject, reason: o.reason }) as Promise<{ created: boolean; suspension: SuspensionView }>,
          local: () => locally(c, (s) => s.suspend(p.subject, o.reason, actor())),
        }, (d) => `${d.created ? 'suspended' : 'already suspended'}: ${suspensionText(d.suspension)}`);
      });
  }
  withOutput(cmd.command('list'), 'text')
    .description('the active suspensions')
    .action(async (_o: unknown, c: Command) => {
      await runEither(c, {
        remote: async (r) => ((await adminCall(r, 'GET', '/suspensions')) as { suspensions: SuspensionView[] }).suspensions,
        local: () => locally(c, (s) => s.list()),
      }, suspensionsText);
    });
  withOutput(cmd.command('show'), 'text')
    .argument('<subject>', 'kind:name, as `suspend list` prints it (software:NAME, zone:NAME, key:OWNER/PURPOSE, node:…)')
    .description("a subject's suspensions, the active one first, with their reasons and figures")
    .action(async (text: string, _o: unknown, c: Command) => {
      const s = subject(text);
      await runEither(c, {
        remote: (r) => adminCall(r, 'GET', subjectPath(s)) as Promise<{ subject: string; history: SuspensionView[] }>,
        local: () => locally(c, async (svc) => {
          const history = await svc.show(s);
          return { subject: s, active: history.find((h) => h.active) ?? null, history };
        }),
      }, historyText);
    });
  withOutput(cmd.command('clear'), 'text')
    .argument('<subject>', 'kind:name, as `suspend list` prints it')
    .description('lift the active suspension of a subject')
    .action(async (text: string, _o: unknown, c: Command) => {
      const s = subject(text);
      await runEither(c, {
        remote: (r) => adminCall(r, 'POST', `${subjectPath(s)}/clear`) as Promise<SuspensionView>,
        local: () => locally(c, (svc) => svc.clear(s, actor())),
      }, (d) => `cleared: ${suspensionText(d)}`);
    });
  return cmd;
}
