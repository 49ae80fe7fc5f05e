/**
 * deploy/ checked as far as this machine can: the systemd units with `systemd-analyze verify`
 * (their program paths pointed at /bin/true, since nothing is installed under /opt or /usr/local
 * here) and their hardening; the Kubernetes manifests parsed and checked for shape (references
 * between objects, probes, security contexts); the sample configs through `keyanchor config check
 * --schema-only`; the Dockerfiles for the rules they must keep (multi-stage, non-root, no build
 * tools in the final stage). No container engine or cluster runs here: images are not built.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { requireTool } from '../helpers/deps.js';
import { ROOT, run, runKeyanchor } from '../helpers/processes.js';

const deploy = (...p: string[]) => path.join(ROOT, 'deploy', ...p);
const read = (...p: string[]) => readFileSync(deploy(...p), 'utf8');
const hasSystemd = requireTool('systemd-analyze', 'the systemd unit checks');
const scratch = mkdtempSync(path.join(tmpdir(), 'keyanchor-deploy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `Key=value` settings of a unit (continuation lines joined), every value of a repeated key. */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.replace(/\\\n\s*/g, ' ').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('systemd units', () => {
  const units = readdirSync(deploy('systemd')).filter((f) => f.endsWith('.service'));

  it.runIf(hasSystemd)('pass systemd-analyze verify', async () => {
    expect(units.sort()).toEqual(['billing.service', 'keyanchor.service']);
    const copies = units.map((u) => {
      const copy = path.join(scratch, u);
      writeFileSync(copy, read('systemd', u).replace(/^(ExecStart(?:Pre)?=)\/\S+/gm, '$1/bin/true'));
      return copy;
    });
    const r = await run('systemd-analyze', ['verify', '--man=no', ...copies]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('the broker unit: simple service, hardened, state dir, HSM PIN as a credential the config names, stop after the drain', () => {
    const s = unitSettings(read('systemd', 'keyanchor.service'));
    expect(s.get('Type')).toEqual(['simple']);
    for (const [k, v] of [['ProtectSystem', 'strict'], ['NoNewPrivileges', 'yes'], ['StateDirectory', 'keyanchor'], ['StateDirectoryMode', '0700'], ['User', 'keyanchor'], ['CapabilityBoundingSet', '']]) {
      expect(s.get(k!), k).toEqual([v]);
    }
    expect(s.get('ExecStart')![0]).toMatch(/ --config \/etc\/keyanchor\/config\.yaml serve$/);
    expect(s.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    const [name] = s.get('LoadCredential')![0]!.split(':');
    const config = parseConfig(read('config.yaml'), { file: '/etc/keyanchor/config.yaml', resolveSecrets: false });
    expect(config.custody.kind).toBe('pkcs11');
    expect(read('config.yaml')).toContain(`pin: { file: /run/credentials/keyanchor.service/${name} }`);
    expect(config.stateDir).toBe('/var/lib/keyanchor');
    expect(Number(s.get('TimeoutStopSec'))).toBeGreaterThan(config.server.shutdownGraceSeconds);
  });

  it('the workload unit: the agent runs the program as another user with the node key as a credential', () => {
    const s = unitSettings(read('systemd', 'billing.service'));
    const exec = s.get('ExecStart')![0]!;
    expect(exec).toMatch(/^\/usr\/local\/bin\/attest-agent exec /);
    expect(exec).toContain('--node-key %d/node-key');
    expect(exec).toContain('--user billing');
    expect(exec).not.toContain('--allow-shared-uid');
    expect(s.get('LoadCredential')![0]).toMatch(/^node-key:/);
    expect(s.get('CapabilityBoundingSet')).toEqual(['CAP_SETUID CAP_SETGID CAP_CHOWN']);
    expect(s.get('NoNewPrivileges')).toEqual(['yes']);
  });
});

interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> }

function manifests(file: string): K8sObject[] {
  const docs = parseAllDocuments(read('kubernetes', file));
  for (const d of docs) expect(d.errors, file).toEqual([]);
  const objects = docs.map((d) => d.toJS() as K8sObject);
  for (const o of objects) {
    expect(o.apiVersion, `${file}: apiVersion`).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
    expect(o.metadata.name, `${file}: ${o.kind} name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  }
  return objects;
}
const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const subset = (a: Record<string, string>, b: Record<string, string>) => Object.entries(a).every(([k, v]) => b[k] === v);

/** Every volume a container mounts exists in the pod, and the selector matches the pod's labels. */
function checkPodSpec(deployment: K8sObject): void {
  const { selector, template } = deployment.spec;
  expect(subset(selector.matchLabels, template.metadata.labels)).toBe(true);
  const volumes = new Set((template.spec.volumes as Array<{ name: string }>).map((v) => v.name));
  for (const c of template.spec.containers) {
    expect(c.image).toMatch(/^[\w.-]+(\/[\w.-]+)+:[\w.-]+$/);
    for (const m of c.volumeMounts) expect(volumes.has(m.name), `${c.name} mounts ${m.name}`).toBe(true);
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
  }
}

describe('Kubernetes manifests', () => {
  it('the broker: Deployment with probes, a PodDisruptionBudget and a Service selecting it, a non-root pod, a valid config', async () => {
    const objects = manifests('broker.yaml');
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service']);
    const [dep] = byKind(objects, 'Deployment');
    checkPodSpec(dep!);
    const pod = dep!.spec.template;
    const [c] = pod.spec.containers;
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'https', scheme: 'HTTPS' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    const [pdb] = byKind(objects, 'PodDisruptionBudget');
    expect(subset(pdb!.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
    const [svc] = byKind(objects, 'Service');
    expect(subset(svc!.spec.selector, pod.metadata.labels)).toBe(true);
    // Several replicas on the shared PostgreSQL store, one kept through voluntary evictions.
    expect(dep!.spec.replicas).toBeGreaterThan(1);
    expect(pdb!.spec.minAvailable).toBe(1);

    const [cm] = byKind(objects, 'ConfigMap');
    const config = parseConfig(cm!.data!['config.yaml'], { file: '/etc/keyanchor/config.yaml', resolveSecrets: false });
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(config.server.shutdownGraceSeconds);
    const mounts = (c.volumeMounts as Array<{ mountPath: string }>).map((m) => m.mountPath);
    expect(config.store.kind).toBe('postgres');
    const db = config.store.kind === 'postgres' ? config.store : undefined;
    for (const p of [config.tls!.cert, config.policyDir, config.stateDir, db!.tls!.ca!]) expect(mounts.some((m) => p.startsWith(m)), p).toBe(true);
  });

  it('the workload: the agent is the entrypoint, runs the program as another uid, the node key is read-only and not the program\'s', () => {
    const objects = manifests('workload.yaml');
    const [dep] = byKind(objects, 'Deployment');
    checkPodSpec(dep!);
    const [c] = dep!.spec.template.spec.containers;
    expect(c.command.slice(0, 2)).toEqual(['attest-agent', 'exec']);
    expect(c.command).toContain('--user=10001');
    expect(c.command).not.toContain('--allow-shared-uid');
    expect(c.securityContext.capabilities.add.sort()).toEqual(['CHOWN', 'SETGID', 'SETUID']);
    const keyArg = (c.command as string[]).find((a) => a.startsWith('--node-key='))!.slice('--node-key='.length);
    const mount = (c.volumeMounts as Array<{ name: string; mountPath: string; readOnly?: boolean }>).find((m) => keyArg.startsWith(`${m.mountPath}/`));
    expect(mount?.readOnly).toBe(true);
    const work = (c.command as string[]).find((a) => a.startsWith('--work-dir='))!.slice('--work-dir='.length);
    const workVolume = dep!.spec.template.spec.volumes.find((v: { name: string }) => v.name === c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === work).name);
    expect(workVolume.emptyDir.medium).toBe('Memory'); // a tmpfs, where key files may go
  });
});

describe('sample configs through `keyanchor config check --schema-only`', () => {
  it('deploy/config.yaml', async () => {
    const r = await runKeyanchor(['config', 'check', '--schema-only', deploy('config.yaml')]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`${deploy('config.yaml')} (schema only)\nok      config   schema: every key known and valid (secrets not read)\nconfig OK\n`);
  });

  it('the broker ConfigMap\'s config.yaml', async () => {
    const [cm] = byKind(manifests('broker.yaml'), 'ConfigMap');
    const file = path.join(scratch, 'k8s-config.yaml');
    writeFileSync(file, cm!.data!['config.yaml']!);
    const r = await runKeyanchor(['config', 'check', '--schema-only', file, '-o', 'json']);
    expect(r.code, r.stdout).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, schemaOnly: true });
  });
});

describe('Dockerfiles', () => {
  for (const name of ['broker.Dockerfile', 'agent.Dockerfile']) {
    it(`${name}: multi-stage, the final stage non-root and free of compilers and package installs`, () => {
      const text = read('docker', name);
      const stages = text.split(/^FROM /m).slice(1);
      expect(stages.length).toBeGreaterThanOrEqual(2);
      const final = stages.at(-1)!;
      expect(final).toMatch(/^COPY --from=build /m);
      expect(final).toMatch(/^USER [1-9]\d*:[1-9]\d*$/m);
      expect(final).not.toMatch(/apt-get|g\+\+|make|python3|npm ci|tsc/);
    });
  }
});
