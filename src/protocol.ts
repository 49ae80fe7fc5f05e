/**
 * Wire protocol between attest-agent and the broker. Shared by both packages: it must import
 * nothing but zod, so the agent stays free of broker dependencies.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;
export const EVIDENCE_TYP = 'keyanchor-evidence+jws';
/** Upper bound on the compact JWS, in bytes. Larger evidence gets 413 evidence_too_large. */
export const MAX_EVIDENCE_BYTES = 64 * 1024;
/** Algorithms a node key may sign evidence with. No `none`, no HMAC. */
export const EVIDENCE_ALGS = ['ES256', 'ES384', 'EdDSA', 'PS256'] as const;
export const RELEASE_ENC = 'A256GCM';

/** Every problem code the broker can answer with, and its HTTP status. */
export const PROBLEM_STATUS = {
  request_malformed: 400,
  evidence_malformed: 400,
  nonce_unknown: 401,
  nonce_expired: 401,
  nonce_replayed: 401,
  evidence_signature_invalid: 401,
  node_untrusted: 401,
  clock_skew: 401,
  software_not_approved: 403,
  key_not_granted: 403,
  key_unknown: 404,
  not_found: 404,
  method_not_allowed: 405,
  evidence_too_large: 413,
  unsupported_media_type: 415,
  unauthorized: 401,
  forbidden: 403,
  key_exists: 409,
  key_state_invalid: 409,
  challenge_capacity: 503,
  custody_unavailable: 503,
  store_unavailable: 503,
  audit_unavailable: 503,
  recipient_unsupported: 400,
  recipient_invalid: 400,
  request_timeout: 408,
  expectation_failed: 417,
  policy_rejected: 422,
  rate_limited: 429,
  request_headers_too_large: 431,
  suspended: 403,
  suspension_unknown: 404,
  overloaded: 503,
  shutting_down: 503,
  policy_expired: 503,
  internal: 500,
} as const;
export type ProblemCode = keyof typeof PROBLEM_STATUS;
export const PROBLEM_CODES = Object.keys(PROBLEM_STATUS) as ProblemCode[];

export const problemType = (code: ProblemCode): string => `urn:keyanchor:problem:${code}`;

export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.enum(PROBLEM_CODES as [ProblemCode, ...ProblemCode[]]),
  requestId: z.string(),
  detail: z.string().optional(),
});
export type Problem = z.infer<typeof ProblemSchema>;

// ---- building blocks ------------------------------------------------------------------------

const b64url = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9_-]+$/, 'base64url');
const b64 = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256');
export const ImageDigest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'sha256:<64 hex>');
/** Key names are `owner/purpose`, lowercase, each part 1–64 of [a-z0-9._-]. */
export const KeyName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}\/[a-z0-9][a-z0-9._-]{0,63}$/, 'owner/purpose');
export const NonceString = b64url(128).min(43);
/** A certificate chain as in JWS `x5c`: standard base64 DER, leaf first. */
export const X5c = z.array(b64(16_384)).min(1).max(5);

// ---- POST /v1/challenge ---------------------------------------------------------------------

export const RecipientKeyType = z.enum(['EC', 'RSA']);
export type RecipientKeyType = z.infer<typeof RecipientKeyType>;

export const ChallengeResponseSchema = z.strictObject({
  nonce: NonceString,
  expiresAt: z.string(),
  ttlSeconds: z.number().int().positive(),
  protocolVersion: z.literal(PROTOCOL_VERSION),
  /** Ephemeral key types this broker's custody can release to, preferred first. */
  recipientKeyTypes: z.array(RecipientKeyType).min(1),
});
export type ChallengeResponse = z.infer<typeof ChallengeResponseSchema>;

// ---- POST /v1/attest ------------------------------------------------------------------------

export const AttestRequestSchema = z.strictObject({ evidence: z.string() });
export type AttestRequest = z.infer<typeof AttestRequestSchema>;

export const EvidenceHeaderSchema = z.strictObject({
  alg: z.enum(EVIDENCE_ALGS),
  typ: z.literal(EVIDENCE_TYP),
  x5c: X5c,
});
export type EvidenceHeader = z.infer<typeof EvidenceHeaderSchema>;

/** A publisher signature over a binary: `sig` is base64url of the signature bytes (DER for ECDSA). */
export const BinarySignatureSchema = z.strictObject({
  sig: b64url(2048),
  /** For certificate publishers: the signing certificate (and intermediates), leaf first. */
  x5c: X5c.optional(),
});
/** A cosign simple-signing signature over an image: the JSON payload and the signature over it. */
export const ImageSignatureSchema = z.strictObject({
  payload: b64url(16_384),
  sig: b64url(2048),
  x5c: X5c.optional(),
});

const EcPublicJwk = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: b64url(64),
  y: b64url(64),
  alg: z.literal('ECDH-ES+A256KW').optional(),
  use: z.literal('enc').optional(),
  kid: z.string().max(128).optional(),
});
const RsaPublicJwk = z.strictObject({
  kty: z.literal('RSA'),
  n: b64url(1400),
  e: b64url(16),
  alg: z.enum(['RSA-OAEP-256', 'RSA-OAEP']).optional(),
  use: z.literal('enc').optional(),
  kid: z.string().max(128).optional(),
});
export const RecipientJwkSchema = z.discriminatedUnion('kty', [EcPublicJwk, RsaPublicJwk]);
export type RecipientJwk = z.infer<typeof RecipientJwkSchema>;

export const KeyRequestSchema = z.strictObject({
  name: KeyName,
  version: z.number().int().positive().max(1_000_000).optional(),
});

export const EvidencePayloadSchema = z.strictObject({
  ver: z.literal(PROTOCOL_VERSION),
  nonce: NonceString,
  iat: z.number().int().nonnegative(),
  workload: z.strictObject({
    binary: z.strictObject({
      path: z.string().min(1).max(4096),
      sha256: Sha256Hex,
      signatures: z.array(BinarySignatureSchema).max(8).default([]),
    }),
    image: z
      .strictObject({
        ref: z.string().min(1).max(1024).optional(),
        digest: ImageDigest,
        signatures: z.array(ImageSignatureSchema).max(8).default([]),
      })
      .optional(),
  }),
  keys: z
    .array(KeyRequestSchema)
    .min(1)
    .max(16)
    .refine((ks) => new Set(ks.map((k) => k.name)).size === ks.length, 'key names must be unique'),
  cnf: z.strictObject({ jwk: RecipientJwkSchema }),
});
export type EvidencePayload = z.infer<typeof EvidencePayloadSchema>;
export type EvidencePayloadInput = z.input<typeof EvidencePayloadSchema>;

/**
 * How a released key travels, always as a compact JWE (RFC 7516) to `cnf.jwk`:
 * - `plaintext`: the JWE plaintext is the raw key bytes (software custody).
 * - `cek`: the key is the JWE's content-encryption key, wrapped to the agent's RSA key inside
 *   the HSM (alg RSA-OAEP or RSA-OAEP-256, enc A256GCM); the plaintext is the UTF-8 `kid`
 *   `name@version`. The agent unwraps the encrypted key with its private key and checks the
 *   JWE decrypts to the expected kid. The broker never holds the key's bytes (PKCS#11 custody).
 */
export const ReleaseForm = z.enum(['plaintext', 'cek']);
export type ReleaseForm = z.infer<typeof ReleaseForm>;
export const releaseKid = (name: string, version: number): string => `${name}@${version}`;

export const ReleasedKeySchema = z.strictObject({
  name: KeyName,
  version: z.number().int().positive(),
  form: ReleaseForm,
  jwe: z.string(),
});
export type ReleasedKey = z.infer<typeof ReleasedKeySchema>;

export const AttestResponseSchema = z.strictObject({
  requestId: z.string(),
  keys: z.array(ReleasedKeySchema),
});
export type AttestResponse = z.infer<typeof AttestResponseSchema>;
