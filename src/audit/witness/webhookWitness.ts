/**
 * A webhook witness: each entry POSTed as an `audit.checkpoint` event through the broker's webhook
 * sender (Standard Webhooks signatures, a bounded queue, retries; src/webhook/). Witnessed once
 * the receiver answered 2xx.
 */
import type { WebhookSender } from '../../webhook/sender.js';
import type { Witness, WitnessLine, WitnessStats } from './witness.js';

export const WITNESS_EVENT = 'audit.checkpoint';

export class WebhookWitness implements Witness {
  readonly confirms = true;
  readonly name: string;
  #witnessed = 0;

  constructor(private readonly sender: WebhookSender, url: string) {
    this.name = `webhook:${url}`;
  }

  send(line: WitnessLine, onWitnessed: () => void): void {
    this.sender.send(WITNESS_EVENT, { ...line }, () => {
      this.#witnessed++;
      onWitnessed();
    });
  }

  stats(): WitnessStats {
    const s = this.sender.stats();
    return { sent: s.delivered + s.failed + s.dropped + s.queued, witnessed: this.#witnessed, failed: s.failed + s.dropped };
  }

  close(graceMs: number): Promise<void> {
    return this.sender.close(graceMs);
  }
}
