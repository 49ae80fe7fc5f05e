/** The schema of one policy file. Unknown keys are errors; every name is checked for form. */
import { z } from 'zod';
import { ImageDigest, Sha256Hex } from '../protocol.js';
import { AlarmEntry, DeniedNodeEntry, LimitEntry } from './controlsSchema.js';
import { Description, PolicyName } from './names.js';

export { PolicyName } from './names.js';

/** PEM material: inline, or a file path (relative to the policy file; may use ${stateDir}). */
export const Material = z
  .strictObject({ file: z.string().min(1).optional(), pem: z.string().min(1).optional() })
  .refine((m) => (m.file === undefined) !== (m.pem === undefined), 'give exactly one of "file" or "pem"');

/** `team/purpose` or `team/purpose@VERSION` (pins the version). A regex, so the JSON Schema has it too. */
export const KeyGrantRef = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}\/[a-z0-9][a-z0-9._-]{0,63}(@[1-9]\d{0,6})?$/, 'a key name "team/purpose", optionally "@VERSION"');

const NodeCAEntry = z.strictObject({ name: PolicyName, description: Description, certificate: Material });

const ZoneEntry = z.strictObject({
  name: PolicyName,
  description: Description,
  match: z
    .strictObject({
      nodeCA: PolicyName.optional(),
      subject: z.string().min(1).optional(),
      sanUriPrefix: z.string().min(1).optional(),
    })
    .refine((m) => m.nodeCA || m.subject || m.sanUriPrefix, 'give at least one of nodeCA, subject, sanUriPrefix'),
});

const PublisherEntry = z
  .strictObject({
    name: PolicyName,
    description: Description,
    publicKey: Material.optional(),
    certificate: Material.optional(),
    subjects: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine((p) => (p.publicKey === undefined) !== (p.certificate === undefined), 'give exactly one of "publicKey" or "certificate"')
  .refine((p) => !p.subjects || p.certificate, '"subjects" applies only to a certificate publisher');

const artifact = <T extends z.ZodType<string>>(digest: T) =>
  z
    .strictObject({
      digests: z.array(digest).optional(),
      publishers: z.array(PolicyName).optional(),
    })
    .refine((a) => (a.digests?.length ?? 0) + (a.publishers?.length ?? 0) > 0, 'approve by at least one digest or publisher');

const GrantEntry = z.strictObject({
  keys: z.array(KeyGrantRef).min(1),
  zones: z.array(PolicyName).min(1),
  nodes: z.array(z.string().min(1)).min(1).optional(),
});

const SoftwareEntry = z.strictObject({
  name: PolicyName,
  description: Description,
  binary: artifact(Sha256Hex),
  image: artifact(ImageDigest).optional(),
  grants: z.array(GrantEntry).min(1),
});

/** `jwt:sub:…`, `jwt:group:…`, `cert:subject:…` or `cert:uri:…`. */
export const Principal = z.string().regex(/^(jwt:sub|jwt:group|cert:subject|cert:uri):.+$/s, 'a principal "jwt:sub:…", "jwt:group:…", "cert:subject:…" or "cert:uri:…"');

const TeamEntry = z
  .strictObject({
    name: PolicyName,
    description: Description,
    role: z.enum(['owner', 'security']).default('owner'),
    /** Key-name prefixes the team owns, each ending in "/" or naming a whole key owner part. */
    keyPrefixes: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}\/([a-z0-9._-]{0,64})$/, 'a key prefix like "payments/" or "payments/db-"')).optional(),
    members: z.array(Principal).min(1),
  })
  .refine((t) => t.role === 'security' || (t.keyPrefixes?.length ?? 0) > 0, 'an owner team needs keyPrefixes');

/**
 * One policy file: any of the sections, each a list merged across files. A new section (rate
 * limits, alarms, a node deny-list) is one more entry here and in SECTIONS, plus its step in
 * compile.ts; everything else (reading, parsing, locating problems, the JSON Schema) follows.
 */
export const PolicyFileSchema = z
  .strictObject({
    version: z.literal(1).optional().describe('the policy format version; the only one is 1'),
    nodeCAs: z.array(NodeCAEntry).optional().describe('certificate authorities that issue node certificates'),
    zones: z.array(ZoneEntry).optional().describe('how node certificates map to zones'),
    publishers: z.array(PublisherEntry).optional().describe('whose signatures approve software'),
    software: z.array(SoftwareEntry).optional().describe('approved software and the keys it may receive'),
    teams: z.array(TeamEntry).optional().describe('who manages which keys through the admin API'),
    limits: z.array(LimitEntry).optional().describe('rate limits per zone, software entry, key, node or globally; see docs/policy.md'),
    alarms: z.array(AlarmEntry).optional().describe('alarms on release and refusal counts that notify or suspend; see docs/policy.md'),
    deniedNodes: z.array(DeniedNodeEntry).optional().describe('nodes refused whatever their certificate chain: by fingerprint, serial or SAN URI'),
  })
  .meta({ title: 'keyanchor policy file', description: 'One file of a keyanchor policy directory; see docs/policy.md.' });
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

/** The list sections of a policy file, in the order they are compiled. */
export const SECTIONS = ['nodeCAs', 'zones', 'publishers', 'software', 'teams', 'limits', 'alarms', 'deniedNodes'] as const;
export type Section = (typeof SECTIONS)[number];
