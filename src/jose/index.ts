/**
 * A small synchronous JOSE implementation on node:crypto, for the release path only: exactly the
 * algorithms the protocol allows, parsed strictly. It imports nothing but node:crypto, so the
 * agent's bundle carries it as it carries src/protocol.ts. Everything off the hot path (admin
 * JWTs, tests) uses the jose library.
 */
export { JoseError, isJoseError, type JoseErrorCode } from './errors.js';
export { firstDuplicateKey, isJsonObject, parseStrictJson, type JsonObject, type StrictJson } from './json.js';
export { fromB64u } from './base64url.js';
export { JWS_ALGORITHMS, type JwsAlg } from './signatures.js';
export { compactSign, compactVerify, parseCompactJws, verifyParsedJws, type ParsedJws } from './jws.js';
export { compactDecrypt, compactEncrypt, JWE_ALGORITHMS, JWE_ENC, type DecryptedJwe, type JweAlg, type JweDecryptionKey, type JweRecipient } from './jwe.js';
export { generateP256, isOnP256, pointJwk, uncompressedPoint, P256_COORD_BYTES } from './p256.js';
