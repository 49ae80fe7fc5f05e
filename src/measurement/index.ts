/**
 * Measurement: does a publisher approve the measured binary or image? See verify.ts for the
 * formats and docs/signing.md for the commands a release pipeline runs.
 */
export {
  checkBinarySignature,
  checkImageSignature,
  verifyBinarySignature,
  verifyImageSignature,
  MAX_SIGNATURE_BYTES,
} from './verify.js';
export { artifactStatement } from './statement.js';
export { MAX_PAYLOAD_BYTES, COSIGN_SIGNATURE_TYPE } from './cosignPayload.js';
export { MAX_PATH_LENGTH } from './certChain.js';
export { MIN_RSA_BITS } from './publisherKey.js';
export type { Verdict, OnReject } from './verdict.js';
