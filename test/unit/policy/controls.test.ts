/**
 * The crypto-anchor sections of a policy (limits, alarms, deniedNodes): what a valid file compiles
 * to, and every field invalid in turn, each a problem at `file:line:col path: message`. The node
 * CA is made at test time with node:crypto (src/pki.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, loadPolicyDir, PolicyError } from '../../../src/policy/load.js';
import { issueCertificate } from '../../../src/pki.js';

let root: string;
let n = 0;
const FP = 'ab'.repeat(32);

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'keyanchor-controls-'));
  writeFileSync(path.join(root, 'ca.pem'), (await issueCertificate({ subject: 'CN=nodes', ca: true })).certPem);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const base = () => `nodeCAs:
  - name: ca1
    certificate: { file: "${path.join(root, 'ca.pem')}" }
zones:
  - name: pci
    match: { nodeCA: ca1 }
software:
  - name: api
    binary: { digests: ["${'cd'.repeat(32)}"] }
    grants:
      - keys: [payments/db]
        zones: [pci]
`;

const controls = `limits:
  - name: api-rate
    software: api
    windows: ["5/s", "2000/day"]
  - name: each-node
    zone: pci
    perNode: true
    windows: ["30/10m"]
  - name: db-key
    key: payments/db
    windows: ["100/min"]
  - name: node-7
    node: { sanUri: "spiffe://t/pci/node-7" }
    windows: ["1/h"]
  - name: all
    global: true
    windows: ["500/sec"]
alarms:
  - name: api-flood
    measure: releases
    software: api
    period: 1m
    threshold: 100
    evaluationPeriods: 3
    datapointsToAlarm: 2
    action: suspend
  - name: denials
    measure: refusals
    codes: [rate_limited, suspended]
    global: true
    perNode: true
    period: 30s
    threshold: 10
    action: notify
deniedNodes:
  - fingerprint: "${FP}"
    description: stolen laptop
  - serial: "00:0A:1b"
    nodeCA: ca1
  - sanUri: "spiffe://t/pci/node-9"
`;

function dir(text: string): string {
  const d = path.join(root, `p${++n}`);
  mkdirSync(d);
  writeFileSync(path.join(d, 'a.yaml'), text);
  return d;
}

function problems(text: string): string[] {
  const d = dir(text);
  try {
    loadPolicyDir(d);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return (e as PolicyError).problems.map((p) => formatProblem(p).replaceAll(`${d}/`, ''));
  }
  throw new Error('expected the policy to be refused');
}

describe('limits, alarms and deniedNodes', () => {
  it('compile to the policy the controls use', () => {
    const p = loadPolicyDir(dir(base() + controls));
    expect(p.limits.map((l) => [l.name, l.subject, l.perNode, l.windows.map((w) => [w.limit, w.periodMs])])).toEqual([
      ['api-rate', { kind: 'software', name: 'api' }, false, [[5, 1000], [2000, 86_400_000]]],
      ['each-node', { kind: 'zone', name: 'pci' }, true, [[30, 600_000]]],
      ['db-key', { kind: 'key', name: 'payments/db' }, false, [[100, 60_000]]],
      ['node-7', { kind: 'node', node: { sanUri: 'spiffe://t/pci/node-7' } }, false, [[1, 3_600_000]]],
      ['all', { kind: 'global' }, false, [[500, 1000]]],
    ]);
    expect(p.alarms).toEqual([
      { name: 'api-flood', measure: 'releases', subject: { kind: 'software', name: 'api' }, perNode: false, periodMs: 60_000, threshold: 100, evaluationPeriods: 3, datapointsToAlarm: 2, action: 'suspend' },
      { name: 'denials', measure: 'refusals', codes: ['rate_limited', 'suspended'], subject: { kind: 'global' }, perNode: true, periodMs: 30_000, threshold: 10, evaluationPeriods: 1, datapointsToAlarm: 1, action: 'notify' },
    ]);
    expect(p.deniedNodes).toEqual([{ fingerprint: FP }, { serial: 'a1b', nodeCA: 'ca1' }, { sanUri: 'spiffe://t/pci/node-9' }]);
  });

  // Each case: what to replace in the valid file, and the one problem it must give.
  const cases: Array<[string, string, string, string]> = [
    ['an unknown key in a limit', '    windows: ["5/s", "2000/day"]', '    windows: ["5/s"]\n    burst: 3', 'a.yaml:17:5 limits[0].burst: unknown key "burst"'],
    ['a limit name', '- name: api-rate', '- name: Api Rate', 'a.yaml:14:11 limits[0].name: a name of lowercase letters, digits, ".", "_" or "-"'],
    ['a duplicate limit name', '- name: db-key', '- name: api-rate', 'a.yaml:21:11 limits[2].name: limit "api-rate" is already defined at a.yaml:14'],
    ['a rate', '"5/s"', '"5 per second"', 'a.yaml:16:15 limits[0].windows[0]: a rate "N/PERIOD", e.g. "5/s", "100/10m", "2000/day" (units s, m or min, h, d or day)'],
    ['a zero rate', '"30/10m"', '"0/10m"', 'a.yaml:20:15 limits[1].windows[0]: a rate "N/PERIOD", e.g. "5/s", "100/10m", "2000/day" (units s, m or min, h, d or day)'],
    ['a rate period over a month', '"2000/day"', '"2000/40d"', 'a.yaml:16:22 limits[0].windows[1]: a period of at most 31 days'],
    ['the same rate twice', '["5/s", "2000/day"]', '["5/s", "5/sec"]', 'a.yaml:16:22 limits[0].windows[1]: the same rate as an earlier window of this limit'],
    ['no windows', 'windows: ["100/min"]', 'windows: []', 'a.yaml:23:14 limits[2].windows: Too small: expected array to have >=1 items'],
    ['two subjects', '    software: api\n    windows: ["5/s"', '    software: api\n    zone: pci\n    windows: ["5/s"', 'a.yaml:14:5 limits[0]: give exactly one subject: zone, software, key, node or global: true'],
    ['no subject', '    key: payments/db\n', '', 'a.yaml:21:5 limits[2]: give exactly one subject: zone, software, key, node or global: true'],
    ['perNode on one node', '    node: { sanUri: "spiffe://t/pci/node-7" }', '    node: { sanUri: "spiffe://t/pci/node-7" }\n    perNode: true', 'a.yaml:24:5 limits[3]: perNode splits a zone, software, key or global subject by node; a node subject is one node already'],
    ['an unknown zone', 'zone: pci\n    perNode', 'zone: dmz\n    perNode', 'a.yaml:18:11 limits[1].zone: unknown zone "dmz"'],
    ['an unknown software entry', '    software: api\n    windows', '    software: web\n    windows', 'a.yaml:15:15 limits[0].software: unknown software entry "web"'],
    ['a key no entry is granted', 'key: payments/db', 'key: payments/card', 'a.yaml:22:10 limits[2].key: no software entry is granted the key "payments/card"'],
    ['a malformed key', 'key: payments/db', 'key: Payments', 'a.yaml:22:10 limits[2].key: owner/purpose'],
    ['global: false', 'global: true\n    windows', 'global: false\n    windows', 'a.yaml:28:13 limits[4].global: Invalid input: expected true'],
    ['a node with two selectors', 'node: { sanUri: "spiffe://t/pci/node-7" }', `node: { sanUri: "spiffe://t/pci/node-7", fingerprint: "${FP}" }`, 'a.yaml:25:11 limits[3].node: give exactly one of fingerprint, serial, sanUri'],
    ['a node under an unknown CA', 'node: { sanUri: "spiffe://t/pci/node-7" }', 'node: { sanUri: "spiffe://t/pci/node-7", nodeCA: ca9 }', 'a.yaml:25:54 limits[3].node.nodeCA: unknown node CA "ca9"'],
    ['an alarm measure', 'measure: releases', 'measure: keys', 'a.yaml:32:14 alarms[0].measure: Invalid option: expected one of "releases"|"refusals"'],
    ['an alarm period', 'period: 1m', 'period: a minute', 'a.yaml:34:13 alarms[0].period: a duration, e.g. "30s", "1m", "1h", "1d"'],
    ['an alarm period too short', 'period: 30s', 'period: 5s', 'a.yaml:44:13 alarms[1].period: a period from 10 s to 1 day'],
    ['alarm periods spanning more than a week', 'period: 1m\n    threshold: 100\n    evaluationPeriods: 3', 'period: 1d\n    threshold: 100\n    evaluationPeriods: 8', 'a.yaml:36:24 alarms[0].evaluationPeriods: 8 periods of 1 day span more than the 7 days counts are kept'],
    ['a negative threshold', 'threshold: 100', 'threshold: -1', 'a.yaml:35:16 alarms[0].threshold: Too small: expected number to be >=0'],
    ['a fractional threshold', 'threshold: 100', 'threshold: 1.5', 'a.yaml:35:16 alarms[0].threshold: Invalid input: expected int, received number'],
    ['evaluationPeriods of 0', 'threshold: 10\n    action: notify', 'threshold: 10\n    evaluationPeriods: 0\n    action: notify', 'a.yaml:46:24 alarms[1].evaluationPeriods: Too small: expected number to be >=1'],
    ['M above N', 'datapointsToAlarm: 2', 'datapointsToAlarm: 4', 'a.yaml:31:5 alarms[0]: datapointsToAlarm (M) cannot be more than evaluationPeriods (N)'],
    ['an action', 'action: suspend', 'action: page', 'a.yaml:38:13 alarms[0].action: Invalid option: expected one of "notify"|"suspend"'],
    ['codes on a releases alarm', '    measure: releases\n', '    measure: releases\n    codes: [rate_limited]\n', 'a.yaml:31:5 alarms[0]: "codes" applies to measure: refusals only'],
    ['a code that is not counted', 'codes: [rate_limited, suspended]', 'codes: [rate_limited, nonce_unknown]', 'a.yaml:41:27 alarms[1].codes[1]: Invalid option: expected one of "policy_expired"|"clock_skew"|"recipient_unsupported"|"recipient_invalid"|"software_not_approved"|"key_not_granted"|"suspended"|"nonce_replayed"|"nonce_expired"|"key_unknown"|"rate_limited"|"internal"'],
    ['a global alarm that suspends', '    perNode: true\n    period: 30s\n    threshold: 10\n    action: notify', '    period: 30s\n    threshold: 10\n    action: suspend', 'a.yaml:39:5 alarms[1]: a global alarm cannot suspend (it would cut every service off); use notify, or perNode: true to suspend the offending node'],
    ['a duplicate alarm name', '- name: denials', '- name: api-flood', 'a.yaml:39:11 alarms[1].name: alarm "api-flood" is already defined at a.yaml:31'],
    ['an unknown zone in an alarm', '    software: api\n    period', '    zone: dmz\n    period', 'a.yaml:33:11 alarms[0].zone: unknown zone "dmz"'],
    ['a fingerprint', `fingerprint: "${FP}"`, 'fingerprint: "AB12"', 'a.yaml:48:18 deniedNodes[0].fingerprint: lowercase hex sha256'],
    ['a serial', 'serial: "00:0A:1b"', 'serial: "0x0A"', 'a.yaml:50:13 deniedNodes[1].serial: a certificate serial number in hex ("0a1b2c" or "0A:1B:2C")'],
    ['a denied node without a selector', '  - sanUri: "spiffe://t/pci/node-9"', '  - description: who?', 'a.yaml:52:5 deniedNodes[2]: give exactly one of fingerprint, serial, sanUri'],
    ['a denied node under an unknown CA', 'nodeCA: ca1\n  - sanUri', 'nodeCA: ca2\n  - sanUri', 'a.yaml:51:13 deniedNodes[1].nodeCA: unknown node CA "ca2"'],
    ['an unknown key in a denied node', '    description: stolen laptop', '    reason: stolen laptop', 'a.yaml:49:5 deniedNodes[0].reason: unknown key "reason"'],
  ];
  it.each(cases)('%s', (_what, from, to, expected) => {
    const text = base() + controls;
    expect(text, `the case's text is in the valid file: ${from}`).toContain(from);
    expect(problems(text.replace(from, to))).toEqual([expected]);
  });
});
