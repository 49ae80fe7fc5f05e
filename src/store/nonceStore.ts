/**
 * The nonce-store seam. A nonce is issued once and consumed once: `consume` is a single atomic
 * step, so two concurrent attempts with one nonce can never both see it fresh (Trustee's
 * `Inserted | AlreadyExists` idea). Backends: memory (default); a shared store plugs in here.
 */
export type IssueResult = 'inserted' | 'exists' | 'capacity';
export type ConsumeResult = 'fresh' | 'unknown' | 'expired' | 'replayed';

export interface NonceStore {
  readonly kind: string;
  /** Records a new nonce that expires at `expiresAt` (epoch ms). */
  issue(nonce: string, expiresAt: number, now: number): Promise<IssueResult>;
  /** Marks the nonce used and says what it was before. Exactly one caller ever sees `fresh`. */
  consume(nonce: string, now: number): Promise<ConsumeResult>;
  close(): Promise<void>;
}
