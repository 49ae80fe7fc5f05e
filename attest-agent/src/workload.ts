/**
 * Turns command-line inputs into WorkloadClaims: the program's path and digest, its publisher
 * signatures, and optionally the container image it belongs to.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { ImageDigest } from '../../src/protocol.js';
import { AgentError } from './errors.js';
import type { WorkloadClaims } from './evidence.js';
import { ociImageDigest, parseLayoutSpec } from './oci.js';
import { collectSignatures, type SignatureInputs } from './signatures.js';

export interface ImageInputs {
  /** `--image-digest sha256:…` */
  digest?: string;
  /** `--oci-layout DIR[:TAG]` */
  ociLayout?: string;
  /** `--image-ref` */
  ref?: string;
}

/**
 * Absolute path of the program: as given when it contains a `/`, else the first executable
 * regular file of that name on $PATH, as a shell would find it. Symlinks are not resolved: the
 * path is what policy names, the digest is of the bytes behind it.
 */
export function resolveProgram(program: string, env: NodeJS.ProcessEnv = process.env): string {
  if (program.includes('/')) return resolve(program);
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue;
    const candidate = join(dir, program);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      /* keep looking */
    }
  }
  throw new AgentError('measurement_failed', `${program} not found on PATH`);
}

export async function imageDigest(inputs: ImageInputs): Promise<string | undefined> {
  if (inputs.digest !== undefined && inputs.ociLayout !== undefined) {
    throw new AgentError('usage', 'give --image-digest or --oci-layout, not both');
  }
  if (inputs.digest !== undefined) {
    if (!ImageDigest.safeParse(inputs.digest).success) throw new AgentError('usage', '--image-digest must be sha256:<64 lowercase hex>');
    return inputs.digest;
  }
  if (inputs.ociLayout !== undefined) return ociImageDigest(parseLayoutSpec(inputs.ociLayout));
  return undefined;
}

export async function describeWorkload(
  binary: { path: string; sha256: string },
  sigs: Omit<SignatureInputs, 'programPath'>,
  image: ImageInputs,
): Promise<WorkloadClaims> {
  const digest = await imageDigest(image);
  if (digest === undefined && (image.ref !== undefined || sigs.imageSigs.length > 0)) {
    throw new AgentError('usage', '--image-ref and --image-sig need --image-digest or --oci-layout');
  }
  const signatures = await collectSignatures({ ...sigs, programPath: binary.path });
  const claims: WorkloadClaims = { binary: { path: binary.path, sha256: binary.sha256, signatures: signatures.binary } };
  if (digest !== undefined) {
    claims.image = { digest, signatures: signatures.image, ...(image.ref === undefined ? {} : { ref: image.ref }) };
  }
  return claims;
}
