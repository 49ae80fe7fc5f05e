/**
 * The schema of the crypto-anchor sections of a policy file: rate limits, alarms and the node
 * deny-list. Limits and alarms name their subject the same way: exactly one of `zone`, `software`,
 * `key`, `node` or `global: true`, and `perNode: true` to give every node its own windows (or its
 * own alarm counts). Bounds that need arithmetic (a period's length, periods × evaluation periods)
 * are checked when the policy is compiled (compileControls.ts), located like these.
 */
import { z } from 'zod';
import { DURATION_PATTERN, RATE_PATTERN } from '../limits/rates.js';
import { KeyName, Sha256Hex } from '../protocol.js';
import { Description, PolicyName } from './names.js';

/**
 * Refusal codes an alarm may count: the refusals of attempts whose evidence verified (the node is
 * known), recorded one by one. Refusals before that are counted per source address only.
 */
export const COUNTED_REFUSALS = [
  'policy_expired', 'clock_skew', 'recipient_unsupported', 'recipient_invalid', 'software_not_approved', 'key_not_granted',
  'suspended', 'nonce_replayed', 'nonce_expired', 'key_unknown', 'rate_limited', 'internal',
] as const;
export type CountedRefusal = (typeof COUNTED_REFUSALS)[number];

const Serial = z.string().regex(/^(?:[0-9a-fA-F]{2}:)*[0-9a-fA-F]{1,2}$|^[0-9a-fA-F]{1,64}$/, 'a certificate serial number in hex ("0a1b2c" or "0A:1B:2C")');

/** One node: by the SHA-256 of its certificate, its serial number, or a SAN URI; optionally only under one node CA. */
export const NodeSelector = z
  .strictObject({
    fingerprint: Sha256Hex.optional().describe('SHA-256 of the node certificate (DER), lowercase hex'),
    serial: Serial.optional().describe('serial number of the node certificate, hex'),
    sanUri: z.string().min(1).max(2048).optional().describe('a SAN URI of the node certificate, exactly'),
    nodeCA: PolicyName.optional().describe('only certificates under this node CA'),
  })
  .refine((n) => [n.fingerprint, n.serial, n.sanUri].filter((v) => v !== undefined).length === 1, 'give exactly one of fingerprint, serial, sanUri');

const subject = {
  zone: PolicyName.optional().describe('requests from nodes in this zone'),
  software: PolicyName.optional().describe('requests approved by this software entry'),
  key: KeyName.optional().describe('releases (or requests) of this key'),
  node: NodeSelector.optional().describe('requests from this node'),
  global: z.literal(true).optional().describe('every request'),
  perNode: z.boolean().optional().describe('every node its own windows (or counts) within the subject'),
};
type SubjectFields = { zone?: string | undefined; software?: string | undefined; key?: string | undefined; node?: unknown; global?: true | undefined; perNode?: boolean | undefined };
const oneSubject = (e: SubjectFields) => [e.zone, e.software, e.key, e.node, e.global].filter((v) => v !== undefined).length === 1;
const SUBJECT_MESSAGE = 'give exactly one subject: zone, software, key, node or global: true';
const PER_NODE_MESSAGE = 'perNode splits a zone, software, key or global subject by node; a node subject is one node already';

export const Rate = z.string().regex(new RegExp(RATE_PATTERN), 'a rate "N/PERIOD", e.g. "5/s", "100/10m", "2000/day" (units s, m or min, h, d or day)');
export const Duration = z.string().regex(new RegExp(DURATION_PATTERN), 'a duration, e.g. "30s", "1m", "1h", "1d"');

export const LimitEntry = z
  .strictObject({
    name: PolicyName,
    description: Description,
    ...subject,
    windows: z.array(Rate).min(1).max(8).describe('the rates; a request must fit every one'),
  })
  .refine(oneSubject, SUBJECT_MESSAGE)
  .refine((e) => !(e.perNode && e.node), PER_NODE_MESSAGE);

export const AlarmEntry = z
  .strictObject({
    name: PolicyName,
    description: Description,
    measure: z.enum(['releases', 'refusals']).describe('what is counted'),
    codes: z.array(z.enum(COUNTED_REFUSALS)).min(1).optional().describe('refusals: only these codes (default: every counted code)'),
    ...subject,
    period: Duration.describe('the length of one evaluation period'),
    threshold: z.number().int().min(0).max(1_000_000_000).describe('a period breaches when its count is above this'),
    evaluationPeriods: z.number().int().min(1).max(100).optional().describe('N: the periods looked at (default 1)'),
    datapointsToAlarm: z.number().int().min(1).max(100).optional().describe('M: how many of the N periods must breach (default N)'),
    action: z.enum(['notify', 'suspend']).describe('notify: announce; suspend: announce and cut the subject off'),
  })
  .refine(oneSubject, SUBJECT_MESSAGE)
  .refine((e) => !(e.perNode && e.node), PER_NODE_MESSAGE)
  .refine((e) => e.codes === undefined || e.measure === 'refusals', '"codes" applies to measure: refusals only')
  .refine((e) => e.datapointsToAlarm === undefined || e.datapointsToAlarm <= (e.evaluationPeriods ?? 1), 'datapointsToAlarm (M) cannot be more than evaluationPeriods (N)')
  .refine((e) => !(e.action === 'suspend' && e.global && !e.perNode), 'a global alarm cannot suspend (it would cut every service off); use notify, or perNode: true to suspend the offending node');

export const DeniedNodeEntry = z
  .strictObject({
    fingerprint: Sha256Hex.optional(),
    serial: Serial.optional(),
    sanUri: z.string().min(1).max(2048).optional(),
    nodeCA: PolicyName.optional(),
    description: Description,
  })
  .refine((n) => [n.fingerprint, n.serial, n.sanUri].filter((v) => v !== undefined).length === 1, 'give exactly one of fingerprint, serial, sanUri');
