/**
 * One `attest-agent exec` taken apart, in a fresh process, each step timed on its own and run one
 * after another (the CLI overlaps the first three): what the agent spends its time on after Node
 * has started and the bundle is loaded. Prints one JSON object of milliseconds.
 * Args: JSON { broker, ca, nodeCert, nodeKey, program, key }.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { ChallengeResponseSchema, AttestResponseSchema } from '../../src/protocol.js';
import { postJson } from '../../attest-agent/src/client.js';
import { buildEvidence } from '../../attest-agent/src/evidence.js';
import { runProgram } from '../../attest-agent/src/exec.js';
import { readNodeIdentity } from '../../attest-agent/src/nodeIdentity.js';
import { prepareProgram } from '../../attest-agent/src/privateCopy.js';
import { chooseRecipientType, createRecipient } from '../../attest-agent/src/recipient.js';
import { openReleasedKeys } from '../../attest-agent/src/release.js';
import { describeWorkload } from '../../attest-agent/src/workload.js';

const a = JSON.parse(process.argv[2]!) as { broker: string; ca: string; nodeCert: string; nodeKey: string; program: string; key: string };
const times: Record<string, number> = { sinceProcessStart: performance.now() };
let last = performance.now();
const lap = (name: string) => {
  const now = performance.now();
  times[name] = now - last;
  last = now;
};

const ca = await readFile(a.ca);
const connection = new (a.broker.startsWith('https:') ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
const client = { broker: a.broker, ca, connection };
const node = await readNodeIdentity(a.nodeCert, a.nodeKey);
lap('nodeIdentity');
const prepared = await prepareProgram(a.program);
lap('measureAndCopy');
const challenge = await postJson(client, 'v1/challenge', {}, ChallengeResponseSchema);
lap('challengeWithTlsHandshake');
const recipient = await createRecipient(chooseRecipientType(challenge.recipientKeyTypes));
lap(`recipientKey${recipient.type}`);
const keys = [{ name: a.key }];
const workload = await describeWorkload({ path: a.program, sha256: prepared.sha256 }, { sigFiles: [], imageSigs: [] }, {}); // PROGRAM.sig
const evidence = await buildEvidence({ node, nonce: challenge.nonce, workload, keys, recipient: recipient.publicJwk, now: new Date() });
lap('signaturesAndEvidence');
const answer = await postJson(client, 'v1/attest', { evidence }, AttestResponseSchema).catch((e: unknown) => {
  throw new Error(`attest refused: ${String(e)}`);
});
lap('attestRoundTrip');
await openReleasedKeys(answer.keys, keys, recipient);
lap('openReleasedKeys');
connection.destroy();
const running = await runProgram({ file: prepared.copyPath, argv0: a.program, args: [], env: {}, stdio: 'ignore', cleanup: () => prepared.cleanupSync() });
await running.exited;
lap('spawnProgramToExit');
process.stdout.write(`${JSON.stringify(times)}\n`);
