/**
 * The cosign "simple signing" payload of a container image signature:
 * {"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":"sha256:…"},
 *  "type":"cosign container image signature"},"optional":…}
 * Read strictly (see strictJson.ts) but tolerant of fields the broker does not use.
 */
import { imageDigest } from './digest.js';
import { foldedField, isObject, parseJsonObject, type JsonObject } from './strictJson.js';
import { reject } from './verdict.js';

export const MAX_PAYLOAD_BYTES = 16 * 1024;
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

/** The image manifest digest a payload names (lowercased), or a refusal. */
export function payloadImageDigest(payload: Uint8Array): string {
  const doc = parseJsonObject(payload, MAX_PAYLOAD_BYTES, 'cosign payload');
  const critical = objectField(doc, 'critical');
  const type = foldedField(critical, 'type');
  if (typeof type !== 'string' || type.toLowerCase() !== COSIGN_SIGNATURE_TYPE) {
    reject(`cosign payload critical.type is not "${COSIGN_SIGNATURE_TYPE}"`);
  }
  const image = objectField(critical, 'image');
  return imageDigest(foldedField(image, 'docker-manifest-digest'), 'cosign payload critical.image.docker-manifest-digest');
}

function objectField(obj: JsonObject, name: string): JsonObject {
  const value = foldedField(obj, name);
  if (!isObject(value)) reject(`cosign payload has no object "${name}"`);
  return value;
}
