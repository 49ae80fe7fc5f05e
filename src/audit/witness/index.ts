/** Builds the configured witnesses (the factory keyed on `kind`). */
import type { Clock } from '../../clock.js';
import type { WitnessConfig } from '../../config.js';
import type { Logger } from '../../log.js';
import { WebhookSender } from '../../webhook/sender.js';
import { FileWitness } from './fileWitness.js';
import { LogWitness } from './logWitness.js';
import { WebhookWitness } from './webhookWitness.js';
import type { Witness } from './witness.js';

export type { Witness, WitnessLine, WitnessStats } from './witness.js';
export { witnessLine } from './witness.js';

export function createWitnesses(configs: readonly WitnessConfig[], deps: { clock: Clock; log: Logger }): Witness[] {
  return configs.map((c) => {
    switch (c.kind) {
      case 'file':
        return new FileWitness(c.path, (e) => deps.log.error({ witness: c.path, err: String(e) }, 'audit witness: could not append a checkpoint'));
      case 'webhook':
        return new WebhookWitness(new WebhookSender(c.webhook, deps.clock, (level, fields, msg) => deps.log[level]({ witness: c.webhook.url, ...fields }, `audit witness: ${msg}`)), c.webhook.url);
      case 'log':
        return new LogWitness(deps.log);
    }
  });
}
