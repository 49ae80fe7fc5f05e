/**
 * How a fired alarm is announced, once its transaction has committed (its `alarm` audit record,
 * and the suspension when its action is `suspend`, were written in that transaction): a structured
 * log line, a metric, this process's suspension set at once (other replicas follow through the
 * change feed), and a webhook POST signed per Standard Webhooks. The webhook only enqueues: a slow
 * or absent receiver never delays a release.
 */
import type { Logger } from '../log.js';
import type { WebhookSender } from '../webhook/sender.js';
import type { FiredAlarm } from './evaluate.js';

/** The webhook event type of a fired alarm. */
export const ALARM_EVENT = 'keyanchor.alarm.fired';

export interface AlarmSinks {
  log: Logger;
  webhook?: Pick<WebhookSender, 'send'>;
  metric: (f: FiredAlarm) => void;
  suspended: (subject: string) => void;
}

export type Announce = (fired: readonly FiredAlarm[]) => void;

export function alarmAnnouncer(sinks: AlarmSinks): Announce {
  return (fired) => {
    for (const f of fired) {
      const cut = f.suspension?.created ? `: ${f.subject} suspended` : f.suspension ? `: ${f.subject} was already suspended` : '';
      sinks.log.warn({ event: 'alarm', ...f }, `alarm ${f.alarm} fired${cut}`);
      sinks.metric(f);
      if (f.suspension) sinks.suspended(f.subject);
      sinks.webhook?.send(ALARM_EVENT, { ...f });
    }
  };
}
