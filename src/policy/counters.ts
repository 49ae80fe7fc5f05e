/**
 * What the policy runtime counts, as plain samples the metrics endpoint (when it comes) registers
 * as gauges and counters: reloads by outcome, refusals by code, and the state of the policy in
 * force (signed or not, version, seconds until it expires).
 */
import type { RefusalCode } from './bundle/refusals.js';
import type { ReloadOutcome } from './runtime.js';

export interface MetricSample {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels?: Record<string, string>;
  value: number;
}

export class PolicyCounters {
  readonly reloads = { loaded: 0, unchanged: 0, refused: 0 };
  readonly refusals = new Map<RefusalCode, number>();

  reloaded(o: ReloadOutcome): void {
    this.reloads[o.outcome]++;
    if (o.outcome === 'refused') this.refusals.set(o.code, (this.refusals.get(o.code) ?? 0) + 1);
  }

  samples(current: { signed: boolean; version: number | null; expires: number | null }, now: number): MetricSample[] {
    const out: MetricSample[] = [];
    for (const [outcome, value] of Object.entries(this.reloads)) {
      out.push({ name: 'keyanchor_policy_reloads_total', help: 'Policy loads by outcome (loaded, unchanged, refused)', type: 'counter', labels: { outcome }, value });
    }
    for (const [code, value] of this.refusals) {
      out.push({ name: 'keyanchor_policy_refusals_total', help: 'Refused policy loads by refusal code', type: 'counter', labels: { code }, value });
    }
    out.push({ name: 'keyanchor_policy_signed', help: '1 when the policy in force is a signed bundle, 0 when it is unsigned', type: 'gauge', value: current.signed ? 1 : 0 });
    if (current.version !== null) out.push({ name: 'keyanchor_policy_version', help: 'Version of the policy bundle in force', type: 'gauge', value: current.version });
    if (current.expires !== null) {
      out.push({ name: 'keyanchor_policy_expires_in_seconds', help: 'Seconds until the policy bundle in force expires (negative: expired)', type: 'gauge', value: Math.floor((current.expires - now) / 1000) });
    }
    return out;
  }
}
