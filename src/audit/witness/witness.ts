/**
 * Witnesses: copies of every checkpoint-log entry outside the broker's reach, so that replacing,
 * emptying or rolling back the store is detected by comparing it with the last entry a witness
 * holds (`keyanchor audit verify --against`). Kinds: a file (on another mount), a webhook, a log
 * line for a log shipper. A witness never blocks the broker: `send` hands the entry over and
 * returns. Witnesses that confirm (the file once the line is flushed to disk, the webhook on a 2xx)
 * say so through `onWitnessed`, and the entry is marked witnessed in the store: only such entries
 * may anchor a prune.
 *
 * What a witness gets, one JSON object per entry: `{"log", "kind", "text", "sig", "key"}`, the
 * text the signature covers and the DER signature in base64.
 */
import type { LogEntry } from '../../store/auditCheckpoints.js';

export interface WitnessLine {
  log: number;
  kind: LogEntry['kind'];
  text: string;
  /** DER ECDSA signature, base64. */
  sig: string;
  key: string;
}

export const witnessLine = (e: LogEntry): WitnessLine => ({ log: e.n, kind: e.kind, text: e.text, sig: e.sig.toString('base64'), key: e.keyId });

export interface WitnessStats {
  sent: number;
  /** Entries the witness confirmed holding. */
  witnessed: number;
  failed: number;
}

export interface Witness {
  /** `file:<path>`, `webhook:<url>` or `log`: recorded with the entries it confirmed. */
  readonly name: string;
  /** Whether `onWitnessed` is ever called. */
  readonly confirms: boolean;
  send(line: WitnessLine, onWitnessed: () => void): void;
  stats(): WitnessStats;
  /** Waits up to `graceMs` for entries in flight. */
  close(graceMs: number): Promise<void>;
}
