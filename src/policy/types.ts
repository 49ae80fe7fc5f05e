/**
 * The policy as the broker uses it: loaded and cross-checked from the YAML files in the policy
 * directory, then immutable. Everything not granted here is denied.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';

export interface NodeCA {
  name: string;
  cert: X509Certificate;
  /** SHA-256 of the DER, lowercase hex. */
  fingerprint: string;
}

/** How a node certificate maps to a zone. Every given condition must hold. */
export interface ZoneMatch {
  /** Name of the node CA the chain ends at. */
  nodeCA?: string;
  /** Exact subject DN of the node certificate, as X509Certificate.subject prints it (one RDN a line). */
  subject?: string;
  /** A SAN URI of the node certificate starts with this, e.g. `spiffe://prod.example/zone/pci/`. */
  sanUriPrefix?: string;
}

export interface Zone {
  name: string;
  match: ZoneMatch;
}

/** A publisher whose signatures approve software: a bare public key, or a code-signing CA. */
export type Publisher =
  | { name: string; kind: 'key'; key: KeyObject }
  | {
      name: string;
      kind: 'ca';
      ca: X509Certificate;
      /** When set, the signing certificate's subject must be one of these (exact DN). */
      subjects?: string[];
    };

export interface KeyGrant {
  name: string;
  /** Pinned version; undefined means the newest enabled version (or the one the agent asks for). */
  version?: number;
}

export interface Grant {
  keys: KeyGrant[];
  zones: string[];
  /** Optional node selectors: exact SAN URI or subject DN of the node certificate. */
  nodes?: string[];
}

export interface ArtifactRule {
  /** Pinned digests, lowercase hex (binary) or `sha256:<hex>` (image). */
  digests: Set<string>;
  /** Names of publishers whose valid signature approves the artifact. */
  publishers: string[];
}

export interface Software {
  name: string;
  binary: ArtifactRule;
  /** When present, the workload must run from an image this rule approves. */
  image?: ArtifactRule;
  grants: Grant[];
}

/**
 * Who may manage which keys through the admin API. Members are principal strings:
 * `jwt:sub:<subject>`, `jwt:group:<group>`, `cert:subject:<DN>`, `cert:uri:<SAN URI>`.
 */
export interface Team {
  name: string;
  /** `security` may do everything; `owner` acts only on keys under `keyPrefixes`. */
  role: 'owner' | 'security';
  keyPrefixes: string[];
  members: string[];
}

/**
 * One node certificate: by its SHA-256 fingerprint (lowercase hex), its serial number (lowercase
 * hex without leading zeros) or one of its SAN URIs; when `nodeCA` is set, only under that CA.
 */
export interface NodeSelector {
  fingerprint?: string;
  serial?: string;
  sanUri?: string;
  nodeCA?: string;
}

/** What a limit or an alarm counts: requests from a zone or node, approved by a software entry, of a key, or all. */
export type Subject =
  | { kind: 'global' }
  | { kind: 'zone' | 'software' | 'key'; name: string }
  | { kind: 'node'; node: NodeSelector };

/** A rate limit: every request its subject covers is charged to each window (per node, with `perNode`). */
export interface RateLimit {
  name: string;
  subject: Subject;
  perNode: boolean;
  windows: ReadonlyArray<{ limit: number; periodMs: number; text: string }>;
}

/** A CloudWatch-style alarm: M of the last N periods over the threshold → notify, or suspend the subject. */
export interface Alarm {
  name: string;
  measure: 'releases' | 'refusals';
  /** Refusals only: the codes counted (undefined: every counted code). */
  codes?: readonly string[];
  subject: Subject;
  perNode: boolean;
  periodMs: number;
  /** A period breaches when its count is above this. */
  threshold: number;
  /** N */
  evaluationPeriods: number;
  /** M */
  datapointsToAlarm: number;
  action: 'notify' | 'suspend';
}

export interface Policy {
  nodeCAs: ReadonlyMap<string, NodeCA>;
  zones: readonly Zone[];
  publishers: ReadonlyMap<string, Publisher>;
  software: readonly Software[];
  teams: readonly Team[];
  limits: readonly RateLimit[];
  alarms: readonly Alarm[];
  /** Nodes refused whatever their chain (a stolen node key cut off without replacing the CA). */
  deniedNodes: readonly NodeSelector[];
  /** Which files it came from and a digest of their content, for logs and /v1/status. */
  sources: readonly { file: string; sha256: string }[];
}
