/**
 * `attest-agent measure PATH [--oci-layout DIR[:TAG]] [--json]`: the values a release pipeline
 * puts into policy. Text output is sha256sum-compatible: `<hex>  PATH`, then, with a layout,
 * `sha256:<hex>  DIR[:TAG]`.
 */
import { measureFile } from '../measure.js';
import { ociImageDigest, parseLayoutSpec } from '../oci.js';
import { resolveProgram } from '../workload.js';

export interface MeasureFlags { ociLayout?: string; json?: boolean }

export async function runMeasure(path: string, flags: MeasureFlags, write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const resolved = resolveProgram(path);
  const { sha256, size } = await measureFile(resolved);
  const image = flags.ociLayout === undefined ? undefined : await ociImageDigest(parseLayoutSpec(flags.ociLayout));
  if (flags.json) {
    write(`${JSON.stringify({ path: resolved, sha256, size, ...(image ? { imageDigest: image } : {}) })}\n`);
  } else {
    write(`${sha256}  ${resolved}\n`);
    if (image) write(`${image}  ${flags.ociLayout}\n`);
  }
  return 0;
}
