/**
 * A log witness: each entry as one log line (`"auditCheckpoint": {...}`) for a log shipper to carry
 * off the host. It never confirms: the broker cannot know the line left the host.
 */
import type { Logger } from '../../log.js';
import type { Witness, WitnessLine, WitnessStats } from './witness.js';

export class LogWitness implements Witness {
  readonly confirms = false;
  readonly name = 'log';
  #sent = 0;

  constructor(private readonly log: Logger) {}

  /** Never calls `_onWitnessed`: the line may never leave the host. */
  send(line: WitnessLine, _onWitnessed?: () => void): void {
    this.#sent++;
    this.log.info({ auditCheckpoint: line }, 'audit checkpoint');
  }

  stats(): WitnessStats {
    return { sent: this.#sent, witnessed: 0, failed: 0 };
  }

  async close(): Promise<void> {}
}
