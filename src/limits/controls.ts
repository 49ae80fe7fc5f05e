/**
 * The crypto-anchor controls of one policy, indexed once when it is first used: the rate-limit
 * windows a request is charged to, the alarm counts it adds to, and whether its node is on the
 * deny-list. A pure function of the policy and the request, so every replica with the same policy
 * computes the same window keys; their state lives in the store.
 *
 * Window keys name the limit and its rate (`L:<limit>:<rate>`, per node `…@<node>`), so changing a
 * rate in the policy starts a fresh window; alarm counter keys name the alarm (`A:<alarm>`, per
 * node `…@<node>`).
 */
import type { Alarm, NodeSelector, Policy, RateLimit } from '../policy/types.js';
import type { LimitWindow } from './gcra.js';
import { nodeId, selectorSubject } from './nodes.js';
import { SubjectIndex, type RequestSubjects } from './subjectIndex.js';

export type { RequestSubjects } from './subjectIndex.js';

/** One alarm count a request adds to. */
export interface AlarmCount {
  alarm: Alarm;
  counterKey: string;
  /** The start of the alarm's current period, epoch ms. */
  bucket: number;
  /** What the alarm suspends when it fires (action suspend). */
  subject: string;
}

export interface Controls {
  /** How many limits, alarms and denied nodes the policy has (a policy without any skips every step). */
  readonly counts: { limits: number; alarms: number; deniedNodes: number };
  /** Every window of every limit that covers the request. */
  windowsFor(s: RequestSubjects): LimitWindow[];
  /** The alarm counts a release (or a refusal with `code`) adds to, at `now`. */
  alarmCounts(measure: Alarm['measure'], s: RequestSubjects, now: number, code?: string): AlarmCount[];
  /** The deny-list entry that refuses this node, if any. */
  denied(node: RequestSubjects['node']): NodeSelector | undefined;
}

const WINDOW_PREFIX = 'L:';

/** The limit a window key belongs to (for the log, the audit record and the metric label). */
export const limitOfWindow = (key: string): string => key.slice(WINDOW_PREFIX.length, key.indexOf(':', WINDOW_PREFIX.length));

const built = new WeakMap<Policy, Controls>();

export function controlsOf(policy: Policy): Controls {
  let c = built.get(policy);
  if (!c) built.set(policy, (c = buildControls(policy)));
  return c;
}

interface IndexedLimit {
  limit: RateLimit;
  /** The windows of a limit shared by every node, made once. */
  shared: LimitWindow[];
}

function buildControls(policy: Policy): Controls {
  const limits = new SubjectIndex<IndexedLimit>();
  for (const limit of policy.limits) {
    limits.add(limit.subject, { limit, shared: limit.windows.map((w) => ({ key: `${WINDOW_PREFIX}${limit.name}:${w.text}`, limit: w.limit, periodMs: w.periodMs })) });
  }
  const alarms = { releases: new SubjectIndex<Alarm>(), refusals: new SubjectIndex<Alarm>() };
  for (const a of policy.alarms) alarms[a.measure].add(a.subject, a);
  const denied = new SubjectIndex<NodeSelector>();
  for (const sel of policy.deniedNodes) denied.add({ kind: 'node', node: sel }, sel);

  return {
    counts: { limits: policy.limits.length, alarms: policy.alarms.length, deniedNodes: policy.deniedNodes.length },
    windowsFor(s) {
      if (limits.size === 0) return [];
      const out: LimitWindow[] = [];
      let id: string | undefined;
      for (const { limit, shared } of limits.collect(s, [])) {
        if (!limit.perNode) out.push(...shared);
        else for (const w of shared) out.push({ ...w, key: `${w.key}@${(id ??= nodeId(s.node))}` });
      }
      return out;
    },
    alarmCounts(measure, s, now, code) {
      const index = alarms[measure];
      if (index.size === 0) return [];
      const out: AlarmCount[] = [];
      for (const alarm of index.collect(s, [])) {
        if (code !== undefined && alarm.codes && !alarm.codes.includes(code)) continue;
        const bucket = Math.floor(now / alarm.periodMs) * alarm.periodMs;
        const node = alarm.perNode ? nodeId(s.node) : undefined;
        out.push({ alarm, bucket, counterKey: `A:${alarm.name}${node !== undefined ? `@${node}` : ''}`, subject: node !== undefined ? `node:${node}` : subjectName(alarm) });
      }
      return out;
    },
    denied: (node) => denied.nodeMatch(node),
  };
}

/** The suspension subject of an alarm that is not per node. */
function subjectName(a: Alarm): string {
  const s = a.subject;
  switch (s.kind) {
    case 'global': return 'global';
    case 'node': return selectorSubject(s.node);
    default: return `${s.kind}:${s.name}`;
  }
}
