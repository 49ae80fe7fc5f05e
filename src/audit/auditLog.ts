/**
 * The audit trail seam. A release is recorded before its keys leave the broker; if the record
 * cannot be written, nothing is released (fail closed).
 */
export interface AuditEvent {
  event: 'release' | 'refusal' | 'key.create' | 'key.rotate' | 'key.state' | 'keystore.export';
  requestId?: string;
  actor?: string;
  [field: string]: unknown;
}

export interface ReleaseRecord {
  count: number;
  lastAt: string;
  lastNode: string;
  lastSoftware: string[];
}

export interface AuditLog {
  record(e: AuditEvent): Promise<void>;
  /** Per key version (`name@version`): how often and to whom it was last released. */
  releases(name: string): ReadonlyMap<number, ReleaseRecord>;
  close(): Promise<void>;
}
