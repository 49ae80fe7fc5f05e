/**
 * `keyanchor policy check [DIR]`: everything the broker checks before it uses a policy — files,
 * schema, references, and with a trust root (--root-key, or policy.root of the config) the
 * signed bundle, and the version against the high-water mark of the config's state directory.
 */
import { Command } from 'commander';
import { checkVersion, trustInForce } from '../../policy/bundle/acceptance.js';
import { PolicyRefusal } from '../../policy/bundle/refusals.js';
import { trustRoot } from '../../policy/bundle/trustRoot.js';
import { FileHighWater } from '../../policy/highWaterFile.js';
import { hydrate } from '../../policy/hydrate.js';
import { loadPolicy } from '../../policy/loadPolicy.js';
import { collect, policyTarget, printProblems, rootFrom } from './common.js';

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a policy directory (and its signed bundle, given a root); prints every problem as file:line:col path: message')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .option('--root-key <pem>', 'a trusted public key of the policy root (repeat for several; default: policy.root of the config)', collect)
    .option('--threshold <n>', 'how many root keys must sign (with --root-key)', (v) => Number.parseInt(v, 10))
    .action(async (dir: string | undefined, o: { rootKey?: string[]; threshold?: number }, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      const pinned = rootFrom(o, t.config);
      const mark = pinned ? await new FileHighWater(t.config.stateDir).get().catch(() => undefined) : undefined;
      const root = pinned ? trustInForce(pinned, mark).root : undefined;
      const r = loadPolicy({ dir: t.dir, vars: t.vars, ...(root ? { root: root.data } : {}), now: Date.now() });
      if (!r.ok) return printProblems(r.problems);
      if (r.bundle) {
        try {
          checkVersion(t.dir, mark, { ...r.bundle, root: trustRoot(r.bundle.root) });
        } catch (e) {
          if (e instanceof PolicyRefusal) return printProblems(e.problems);
          throw e;
        }
      }
      const p = hydrate(r.compiled);
      process.stdout.write(
        `policy OK: ${p.sources.length} file(s), ${p.nodeCAs.size} node CA(s), ${p.zones.length} zone(s), ` +
          `${p.publishers.size} publisher(s), ${p.software.length} software entr${p.software.length === 1 ? 'y' : 'ies'}\n`,
      );
      const b = r.bundle;
      if (b) process.stdout.write(`signed bundle: version ${b.version}, expires ${new Date(b.expires).toISOString()}, ${b.signers.length} valid signature(s) of the ${root!.threshold} required${b.rotated ? ', rotates the root' : ''}, manifest ${b.manifestSha256}\n`);
      else process.stdout.write(`unsigned: no trust root given (--root-key, or policy.root in the config); content ${r.manifestSha256}\n`);
    });
}
