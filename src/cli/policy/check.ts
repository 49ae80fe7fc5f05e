/**
 * `keyanchor policy check [DIR]`: everything the broker checks before it uses a policy — files,
 * schema, references, and with a trust root (--root-key, or policy.root of the config) the
 * signed bundle, and the version against the high-water mark in the config's state store.
 * Roots changed since the pinned one come from that state, or from kept root-changing bundles.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { checkVersion, trustInForce } from '../../policy/bundle/acceptance.js';
import { PolicyRefusal } from '../../policy/bundle/refusals.js';
import { trustRoot } from '../../policy/bundle/trustRoot.js';
import { verifyRootChange } from '../../policy/bundle/verifyBundle.js';
import { hydrate } from '../../policy/hydrate.js';
import { loadPolicy } from '../../policy/loadPolicy.js';
import { storedMark } from '../../store/highWater.js';
import { EXIT, fail } from '../context.js';
import { collect, policyTarget, printProblems, rootFrom } from './common.js';

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a policy directory (and its signed bundle, given a root); prints every problem as file:line:col path: message')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .option('--root-key <pem>', 'a trusted public key of the policy root (repeat for several; default: policy.root of the config)', collect)
    .option('--threshold <n>', 'how many root keys must sign (with --root-key)', (v) => Number.parseInt(v, 10))
    .option('--root-bundle <file>', 'a kept bundle that changed the root, applied in order from the pinned root (repeat): checks later bundles without the broker state', collect)
    .action(async (dir: string | undefined, o: { rootKey?: string[]; threshold?: number; rootBundle?: string[] }, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      const pinned = rootFrom(o, t.config);
      // The state's mark, when its store exists (read only: a check creates nothing).
      const mark = pinned ? await storedMark(t.config.store).catch(() => undefined) : undefined;
      let root;
      try {
        root = pinned ? trustInForce(pinned, mark) : undefined;
        for (const f of o.rootBundle ?? []) {
          if (!root) fail('--root-bundle needs a root (--root-key, or policy.root in the config)', EXIT.usage);
          root = verifyRootChange(readFileSync(path.resolve(f)), root, f);
        }
      } catch (e) {
        if (e instanceof PolicyRefusal) return printProblems(e.problems);
        throw e;
      }
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
      if (b) {
        const required = b.rotated ? `${root!.threshold} of the root keys required to change the root to version ${b.root.version}` : `${root!.bundleSigners.threshold} required`;
        process.stdout.write(`signed bundle: version ${b.version} (root version ${b.root.version}), expires ${new Date(b.expires).toISOString()}, ${b.signers.length} valid signature(s), ${required}, manifest ${b.manifestSha256}\n`);
      }
      else process.stdout.write(`unsigned: no trust root given (--root-key, or policy.root in the config); content ${r.manifestSha256}\n`);
    });
}
