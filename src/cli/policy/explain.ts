/**
 * `keyanchor policy explain`: a described request → the decision and why. The node is a
 * certificate file (its chain checked against the policy's node CAs, as the broker does) or
 * described by node CA, subject and SAN URIs; the workload is a binary file or digest with the
 * signature files the agent would send (checked against the publishers, as the broker does), or
 * `--signed-by` to take a publisher's signature as given; an image digest likewise.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { AgentError } from '../../../attest-agent/src/errors.js';
import { measureFile } from '../../../attest-agent/src/measure.js';
import { collectSignatures, pemChainToX5c } from '../../../attest-agent/src/signatures.js';
import { parseChain, verifyNodeChain } from '../../attestation/nodeChain.js';
import { publishersVouching } from '../../attestation/workload.js';
import { BrokerError } from '../../errors.js';
import type { NodeIdentity } from '../../policy/evaluate.js';
import { explain, renderExplanation } from '../../policy/explain.js';
import { hydrate } from '../../policy/hydrate.js';
import { loadPolicy } from '../../policy/loadPolicy.js';
import type { Policy } from '../../policy/types.js';
import { ImageDigest, KeyName, Sha256Hex } from '../../protocol.js';
import { EXIT, fail } from '../context.js';
import { collect, policyTarget, printProblems } from './common.js';

interface ExplainOptions {
  nodeCert?: string;
  nodeCa?: string;
  subject?: string;
  san?: string[];
  binary?: string;
  binarySha256?: string;
  sig?: string[];
  sigCert?: string;
  signedBy?: string[];
  imageDigest?: string;
  imageSignedBy?: string[];
  key?: string[];
  json?: boolean;
}

export function explainCommand(): Command {
  return new Command('explain')
    .description('explain the decision for a described request: which software entry matched and why, which keys, or what denied it and the near misses')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .option('--node-cert <pem>', 'the node certificate (chain allowed, leaf first), checked against the node CAs')
    .option('--node-ca <name>', 'or a described node: the node CA its chain ends at')
    .option('--subject <dn>', 'the node certificate subject, one RDN a line ("O=Example\\nCN=node-1")')
    .option('--san <uri>', 'a SAN URI of the node certificate (repeat)', collect)
    .option('--binary <file>', 'the program (its sha256 is measured)')
    .option('--binary-sha256 <hex>', 'or the binary digest')
    .option('--sig <file>', 'a publisher signature over the binary, as the agent sends it (repeat)', collect)
    .option('--sig-cert <pem>', 'the signing certificate chain for --sig (certificate publishers)')
    .option('--signed-by <publisher>', 'take a signature by this publisher over the binary as verified (repeat)', collect)
    .option('--image-digest <digest>', 'the image manifest digest (sha256:…)')
    .option('--image-signed-by <publisher>', 'take a signature by this publisher over the image as verified (repeat)', collect)
    .option('--key <name[@version]>', 'a key the workload asks for (repeat)', collect)
    .option('--json', 'the explanation as JSON')
    .action(async (dir: string | undefined, o: ExplainOptions, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      const r = loadPolicy({ dir: t.dir, vars: t.vars, now: Date.now() });
      if (!r.ok) return printProblems(r.problems);
      const policy = hydrate(r.compiled);
      if (!o.key?.length) fail('give at least one --key', EXIT.usage);
      const keys = o.key.map((k) => {
        const [name, version] = k.split('@') as [string, string | undefined];
        if (!KeyName.safeParse(name).success || (version !== undefined && !/^[1-9]\d{0,6}$/.test(version))) fail(`--key ${k}: not "owner/purpose" or "owner/purpose@VERSION"`, EXIT.usage);
        return version === undefined ? { name } : { name, version: Number(version) };
      });
      try {
        const node = nodeOf(policy, o);
        const sha256 = await binaryDigest(o);
        if (o.imageDigest !== undefined && !ImageDigest.safeParse(o.imageDigest).success) fail('--image-digest: not sha256:<64 hex>', EXIT.usage);
        const signatures = o.sig?.length ? (await collectSignatures({ sigFiles: o.sig, programPath: o.binary ?? '', ...(o.sigCert ? { sigCert: o.sigCert } : {}), imageSigs: [] })).binary : [];
        const verified = publishersVouching(policy, { binary: { path: o.binary ?? '-', sha256, signatures } }, Date.now(), () => {});
        const e = explain(policy, {
          node,
          binary: { sha256, publishers: new Set([...verified.binary, ...(o.signedBy ?? [])]) },
          ...(o.imageDigest ? { image: { digest: o.imageDigest, publishers: new Set(o.imageSignedBy ?? []) } } : {}),
          keys,
        });
        process.stdout.write(o.json ? JSON.stringify(e, null, 2) + '\n' : renderExplanation(e));
      } catch (e) {
        if (e instanceof BrokerError && e.code === 'node_untrusted') {
          const out = { decision: { allow: false, code: 'node_untrusted', reason: e.reason } };
          process.stdout.write(o.json ? JSON.stringify(out, null, 2) + '\n' : `decision: DENY node_untrusted — ${e.reason}\n`);
          return;
        }
        if (e instanceof AgentError) fail(e.message, EXIT.usage);
        throw e;
      }
    });
}

function nodeOf(policy: Policy, o: ExplainOptions): NodeIdentity {
  if (o.nodeCert) {
    let pem: string;
    try {
      pem = readFileSync(o.nodeCert, 'utf8');
    } catch (e) {
      fail(`--node-cert ${o.nodeCert}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.usage);
    }
    const x5c = pemChainToX5c(pem, o.nodeCert, (m) => fail(`--node-cert ${m}`, EXIT.usage));
    return verifyNodeChain(parseChain(x5c), policy.nodeCAs, Date.now());
  }
  if (o.nodeCa !== undefined && !policy.nodeCAs.has(o.nodeCa)) fail(`--node-ca ${o.nodeCa}: the policy has no such node CA (it has: ${[...policy.nodeCAs.keys()].join(', ') || 'none'})`, EXIT.usage);
  return { nodeCA: o.nodeCa ?? '', subject: o.subject ?? '', sanUris: o.san ?? [], fingerprint: '' };
}

async function binaryDigest(o: ExplainOptions): Promise<string> {
  if (o.binarySha256 !== undefined) {
    if (!Sha256Hex.safeParse(o.binarySha256).success) fail('--binary-sha256: not 64 lowercase hex digits', EXIT.usage);
    return o.binarySha256;
  }
  if (!o.binary) fail('give --binary or --binary-sha256', EXIT.usage);
  return (await measureFile(o.binary)).sha256;
}
