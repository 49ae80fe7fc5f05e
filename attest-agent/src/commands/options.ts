/**
 * Command-line options shared by `exec` and `fetch`, and their translation into typed inputs.
 * Files named on the command line are read here; nothing below this layer reads argv or env.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { RecipientKeyType } from '../../../src/protocol.js';
import { openAttestation, type Opening } from '../attest.js';
import { AgentError } from '../errors.js';
import type { KeyRequest, WorkloadClaims } from '../evidence.js';
import { readNodeIdentity, type NodeIdentity } from '../nodeIdentity.js';
import { describeWorkload } from '../workload.js';

export interface AttestationFlags {
  broker: string;
  ca?: string;
  nodeCert: string;
  nodeKey: string;
  key: string[];
  imageDigest?: string;
  ociLayout?: string;
  imageRef?: string;
  sig: string[];
  imageSig: string[];
  sigCert?: string;
  timeoutMs: number;
  retries: number;
  waitOnRateLimit: number;
  recipientType?: RecipientKeyType;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function addAttestationOptions(cmd: Command, keyHelp: string): Command {
  return cmd
    .requiredOption('--broker <url>', 'broker base URL (https://…, or http:// for loopback tests)')
    .option('--ca <file>', "PEM CA bundle that signed the broker's TLS certificate")
    .requiredOption('--node-cert <file>', 'PEM node certificate chain, leaf first (sent as x5c)')
    .requiredOption('--node-key <file>', 'PKCS#8 PEM node private key (EC P-256/P-384, Ed25519 or RSA)')
    .option('--key <spec>', keyHelp, collect, [])
    .option('--image-digest <digest>', 'image manifest digest sha256:<hex> the program belongs to')
    .option('--oci-layout <dir[:tag]>', 'OCI image layout to take (and verify) the image digest from; write DIR/ if DIR contains ":"')
    .option('--image-ref <ref>', 'image reference to report with the image digest')
    .option('--sig <file>', 'publisher signature over the program, DER or base64 (repeatable; default PROGRAM.sig if present)', collect, [])
    .option('--image-sig <payload:sig>', 'cosign simple-signing payload file and signature file (repeatable)', collect, [])
    .option('--sig-cert <file>', 'PEM certificate chain of the publisher, attached to every signature as x5c')
    .option('--timeout-ms <n>', 'deadline for each HTTP request', integer(1, 600_000), 10_000)
    .option('--retries <n>', 'extra attempts on network errors, timeouts and 5xx', integer(0, 10), 3)
    .addOption(new Option('--recipient-type <type>', 'make the ephemeral recipient key of this type at start, alongside the first request (RSA for a broker with PKCS#11 custody); default: the type the broker names, made when it does').choices(['EC', 'RSA']))
    .option('--wait-on-rate-limit <seconds>', "when rate-limited, wait as the broker's Retry-After says and try again, up to this many seconds in all (default 0: fail at once)", integer(0, 3600), 0);
}

export interface AttestationInputs {
  broker: string;
  ca?: Buffer;
  node: NodeIdentity;
  timeoutMs: number;
  retries: number;
  retry: { rateLimitWaitSeconds: number };
}

/**
 * Reads the inputs and runs `measure` (hashing the program) while the challenge, and then the
 * recipient key, are already on their way (attest.ts). On any failure nothing is left open.
 */
export async function startAttestation<T>(flags: AttestationFlags, measure: () => Promise<T>, discard: (measured: T) => void = () => undefined): Promise<{ inputs: AttestationInputs; opening: Opening; measured: T }> {
  const ca = flags.ca === undefined ? undefined : await readFile(flags.ca).catch((err: NodeJS.ErrnoException) => {
    throw new AgentError('config', `cannot read --ca ${flags.ca}: ${err.code ?? err.message}`, { cause: err });
  });
  const access = { broker: flags.broker, timeoutMs: flags.timeoutMs, ...(ca ? { ca } : {}) };
  const opening = openAttestation(access, flags.recipientType);
  const [node, measured] = await Promise.allSettled([readNodeIdentity(flags.nodeCert, flags.nodeKey), measure()]);
  if (node.status === 'rejected' || measured.status === 'rejected') {
    opening.close();
    if (measured.status === 'fulfilled') discard(measured.value);
    throw node.status === 'rejected' ? node.reason : (measured as PromiseRejectedResult).reason;
  }
  const inputs = { ...access, node: node.value, retries: flags.retries, retry: { rateLimitWaitSeconds: flags.waitOnRateLimit } };
  return { inputs, opening, measured: measured.value };
}

function splitImageSig(spec: string): { payload: string; sig: string } {
  const at = spec.lastIndexOf(':');
  if (at <= 0 || at === spec.length - 1) throw new AgentError('usage', `--image-sig ${JSON.stringify(spec)}: expected PAYLOADFILE:SIGFILE`);
  return { payload: spec.slice(0, at), sig: spec.slice(at + 1) };
}

export function workloadFromFlags(binary: { path: string; sha256: string }, flags: AttestationFlags): Promise<WorkloadClaims> {
  return describeWorkload(
    binary,
    { sigFiles: flags.sig, imageSigs: flags.imageSig.map(splitImageSig), ...(flags.sigCert ? { sigCert: flags.sigCert } : {}) },
    {
      ...(flags.imageDigest ? { digest: flags.imageDigest } : {}),
      ...(flags.ociLayout ? { ociLayout: flags.ociLayout } : {}),
      ...(flags.imageRef ? { ref: flags.imageRef } : {}),
    },
  );
}

export const keyRequests = (specs: readonly KeyRequest[]): KeyRequest[] =>
  specs.map((k) => (k.version === undefined ? { name: k.name } : { name: k.name, version: k.version }));
