/**
 * Configuration: strict schema, every problem reported at once with file:line:col and path,
 * environment overrides, secrets that never print, frozen result, paths relative to the file.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../../src/config.js';
import { Secret } from '../../../src/secret.js';

/** The problems of the ConfigError that `f` throws (fails the test if it does not throw one). */
function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('config_invalid');
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

const PKCS11 = 'custody:\n  kind: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so\n  token: { label: keyanchor }\n  pin: { env: KA_TEST_PIN }\n';
const PIN = '4711-very-secret-pin';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded defaults', () => {
  it('parse without a file and fill every section', () => {
    const c = parseConfig(undefined);
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.insecureHttp).toBe(false);
    expect(c.nonce).toEqual({ ttlSeconds: 60, perSource: { ratePerSecond: 50, burst: 200, maxSources: 100_000 } });
    expect(c.evidence).toEqual({ maxClockSkewSeconds: 60 });
    expect(c.custody).toEqual({ kind: 'software' });
    expect(c.store).toEqual({ kind: 'sqlite', file: path.resolve(process.cwd(), 'state', 'keyanchor.db'), synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 });
    expect(c.audit).toEqual({ unauthenticatedWindowSeconds: 60, unauthenticatedMaxSources: 10_000, checkpoint: { everyRecords: 1000, everySeconds: 60, sweepSeconds: 300 }, witnesses: [] });
    expect(c.log).toEqual({ level: 'info' });
    expect(c.dev).toEqual({ enabled: false });
    expect(c.server).toEqual({ maxConnections: 4096, maxConnectionsPerSource: 128, shutdownGraceSeconds: 20, maxAttestationsInFlight: 256, workers: 'auto' });
    expect(c.alarms).toEqual({});
    expect(c.metrics).toEqual({ enabled: true });
    expect(c.tls).toBeUndefined();
    expect(c.configDir).toBe(process.cwd());
    expect(c.stateDir).toBe(path.resolve(process.cwd(), 'state'));
    expect(c.policyDir).toBe(path.resolve(process.cwd(), 'policies', 'demo'));
  });

  it('an empty file is the defaults too', () => {
    const c = parseConfig('', { file: path.join(dir, 'empty.yaml') });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.stateDir).toBe(path.join(dir, 'state'));
  });

  it('are deeply frozen', () => {
    const c = parseConfig(undefined);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.listen)).toBe(true);
    expect(Object.isFrozen(c.nonce)).toBe(true);
    expect(Object.isFrozen(c.custody)).toBe(true);
    expect(() => {
      (c.listen as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (c as { stateDir: string }).stateDir = '/elsewhere';
    }).toThrow(TypeError);
    expect(c.listen.port).toBe(8443);
  });
});

describe('unknown keys', () => {
  it('are rejected in YAML with file:line:col at the key and its path', () => {
    const text = 'listen:\n  host: 127.0.0.1\n  prot: 9000\n';
    expect(problemsOf(() => parseConfig(text, { file: 'keyanchor.yaml' }))).toEqual([
      'keyanchor.yaml:3:3 listen.prot: unknown key "prot"',
    ]);
  });

  it('are reported on the line of the key when the value is a nested mapping', () => {
    const text = 'stateDir: /var/lib/keyanchor\nextra:\n  a: 1\n';
    expect(problemsOf(() => parseConfig(text, { file: 'keyanchor.yaml' }))).toEqual([
      'keyanchor.yaml:2:1 extra: unknown key "extra"',
    ]);
  });

  it('are rejected in JSON with file:line:col at the key and its path', () => {
    const text = '{\n  "listen": { "host": "127.0.0.1", "prot": 1 },\n  "bogus": true\n}\n';
    expect(problemsOf(() => parseConfig(text, { file: 'keyanchor.json' }))).toEqual([
      'keyanchor.json:2:36 listen.prot: unknown key "prot"',
      'keyanchor.json:3:3 bogus: unknown key "bogus"',
    ]);
  });

  it('are rejected inside a custody variant', () => {
    const problems = problemsOf(() => parseConfig('custody: { kind: software, kek: x }\n', { file: 'c.yaml' }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^c\.yaml:1:\d+ custody\.kek: unknown key "kek"$/);
  });
});

describe('problems', () => {
  it('are all reported together in one ConfigError', () => {
    const text = 'listen:\n  port: "8443"\nlog:\n  level: loud\nnonce: { ttlSeconds: 0 }\ncolour: blue\n';
    const problems = problemsOf(() => parseConfig(text, { file: 'c.yaml' }));
    expect(problems).toHaveLength(4);
    expect(problems).toEqual(
      expect.arrayContaining([
        'c.yaml:2:9 listen.port: Invalid input: expected number, received string',
        'c.yaml:5:22 nonce.ttlSeconds: Too small: expected number to be >=1',
        expect.stringMatching(/^c\.yaml:4:10 log\.level: Invalid option: expected one of "fatal"\|/),
        expect.stringMatching(/^c\.yaml:6:\d+ colour: unknown key "colour"$/),
      ]),
    );
  });

  it('the error message lists every problem', () => {
    let err: ConfigError | undefined;
    try {
      parseConfig('listen: { port: -1 }\nstore: { kind: redis }\n', { file: 'c.yaml' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toHaveLength(2);
    expect(err!.message).toBe(`invalid configuration:\n  ${err!.problems.join('\n  ')}`);
  });

  it('a YAML syntax error is located', () => {
    expect(problemsOf(() => parseConfig('listen:\n  host: a: b\n', { file: 'c.yaml' }))).toEqual([
      'c.yaml:2:9: Nested mappings are not allowed in compact mappings',
    ]);
  });

  it('a duplicate key is a syntax error', () => {
    expect(problemsOf(() => parseConfig('stateDir: a\nstateDir: b\n', { file: 'c.yaml' }))).toEqual([
      'c.yaml:2:1: Map keys must be unique',
    ]);
  });

  it('a document that is not a mapping is refused', () => {
    expect(problemsOf(() => parseConfig('- 1\n- 2\n', { file: 'c.yaml' }))).toEqual(['c.yaml: must be a mapping']);
  });

  it('an unreadable file is a ConfigError naming it', () => {
    const missing = path.join(dir, 'missing.yaml');
    expect(problemsOf(() => loadConfig(missing, {}))).toEqual([`${missing}: cannot read (ENOENT)`]);
  });
});

describe('environment overrides', () => {
  const file = 'listen: { host: 127.0.0.1, port: 9000 }\nstateDir: /from/file\npolicyDir: /from/file/policies\nlog: { level: warn }\n';

  it('win over the file', () => {
    const c = parseConfig(file, {
      file: 'c.yaml',
      env: {
        KEYANCHOR_PORT: '9443',
        KEYANCHOR_HOST: 'localhost',
        KEYANCHOR_STATE_DIR: '/from/env',
        KEYANCHOR_POLICY_DIR: '/from/env/policies',
        KEYANCHOR_LOG_LEVEL: 'debug',
      },
    });
    expect(c.listen).toEqual({ host: 'localhost', port: 9443 });
    expect(c.stateDir).toBe('/from/env');
    expect(c.policyDir).toBe('/from/env/policies');
    expect(c.log.level).toBe('debug');
  });

  it('apply without a file', () => {
    const c = parseConfig(undefined, { env: { KEYANCHOR_PORT: '0', KEYANCHOR_STATE_DIR: '/srv/ka' } });
    expect(c.listen.port).toBe(0);
    expect(c.stateDir).toBe('/srv/ka');
  });

  it('an empty variable is ignored', () => {
    const c = parseConfig(file, { file: 'c.yaml', env: { KEYANCHOR_PORT: '', KEYANCHOR_HOST: '' } });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 9000 });
  });

  it('a non-numeric KEYANCHOR_PORT is a problem', () => {
    expect(problemsOf(() => parseConfig(file, { file: 'c.yaml', env: { KEYANCHOR_PORT: '94x3' } }))).toEqual([
      'KEYANCHOR_PORT: not a port number',
    ]);
    expect(problemsOf(() => parseConfig(undefined, { env: { KEYANCHOR_PORT: '-1' } }))).toEqual(['KEYANCHOR_PORT: not a port number']);
  });

  it('an out-of-range KEYANCHOR_PORT is a problem', () => {
    const problems = problemsOf(() => parseConfig(undefined, { env: { KEYANCHOR_PORT: '70000' } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/ listen\.port: Too big: expected number to be <=65535$/);
  });

  it('an invalid KEYANCHOR_LOG_LEVEL is a problem', () => {
    const problems = problemsOf(() => parseConfig(undefined, { env: { KEYANCHOR_LOG_LEVEL: 'chatty' } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/ log\.level: Invalid option/);
  });

  it('an env problem is reported together with the file problems', () => {
    const problems = problemsOf(() => parseConfig('colour: blue\n', { file: 'c.yaml', env: { KEYANCHOR_PORT: 'http' } }));
    expect(problems).toHaveLength(2);
    expect(problems).toContain('KEYANCHOR_PORT: not a port number');
    expect(problems).toContainEqual(expect.stringMatching(/^c\.yaml:1:\d+ colour: unknown key "colour"$/));
  });

  it('cannot override a section the file sets to a scalar', () => {
    expect(problemsOf(() => parseConfig('listen: 8443\n', { file: 'c.yaml', env: { KEYANCHOR_PORT: '1' } }))).toEqual([
      'KEYANCHOR_PORT: cannot override listen.port: the file sets listen to a non-object',
      'c.yaml:1:9 listen: Invalid input: expected object, received number',
    ]);
  });

  it('command-line overrides win over the environment', () => {
    const c = parseConfig(file, { file: 'c.yaml', env: { KEYANCHOR_PORT: '9443' }, overrides: { port: 1234, stateDir: '/from/flag' } });
    expect(c.listen.port).toBe(1234);
    expect(c.stateDir).toBe('/from/flag');
  });
});

describe('insecureHttp', () => {
  it.each(['127.0.0.1', '127.10.0.3', '::1', 'localhost'])('is allowed on loopback %s', (host) => {
    const c = parseConfig(`insecureHttp: true\nlisten: { host: "${host}" }\n`, { file: 'c.yaml' });
    expect(c.insecureHttp).toBe(true);
    expect(c.listen.host).toBe(host);
  });

  it.each(['0.0.0.0', '::', '10.1.2.3', 'broker.example.com'])('is refused on %s', (host) => {
    expect(problemsOf(() => parseConfig(`insecureHttp: true\nlisten: { host: "${host}" }\n`, { file: 'c.yaml' }))).toEqual([
      `c.yaml: insecureHttp is allowed only on a loopback address, not ${host}`,
    ]);
  });

  it('is refused when KEYANCHOR_HOST moves the listener off loopback', () => {
    expect(problemsOf(() => parseConfig('insecureHttp: true\n', { file: 'c.yaml', env: { KEYANCHOR_HOST: '0.0.0.0' } }))).toEqual([
      'c.yaml: insecureHttp is allowed only on a loopback address, not 0.0.0.0',
    ]);
  });

  it('is refused when set by a flag on a non-loopback host', () => {
    expect(problemsOf(() => parseConfig('listen: { host: 0.0.0.0 }\n', { file: 'c.yaml', overrides: { insecureHttp: true } }))).toEqual([
      'c.yaml: insecureHttp is allowed only on a loopback address, not 0.0.0.0',
    ]);
  });
});

describe('admin API', () => {
  it('is off by default', () => {
    expect(parseConfig(undefined).admin).toEqual({ enabled: false });
  });

  it('enabled without an authenticator is a problem', () => {
    expect(problemsOf(() => parseConfig('admin: { enabled: true }\n', { file: 'c.yaml' }))).toEqual(['c.yaml:1:8 admin: an enabled admin API needs jwt or mtls']);
  });

  it('mTLS together with insecureHttp is a problem', () => {
    expect(problemsOf(() => parseConfig('insecureHttp: true\nadmin: { enabled: true, mtls: { ca: ca.pem } }\n', { file: 'c.yaml' }))).toEqual([
      'c.yaml: admin.mtls needs TLS; it cannot work with insecureHttp',
    ]);
  });
});

describe('pkcs11 custody PIN', () => {
  it('resolves from the environment into a Secret, with the defaults filled in', () => {
    const c = parseConfig(PKCS11, { file: 'c.yaml', env: { KA_TEST_PIN: PIN } });
    expect(c.custody.kind).toBe('pkcs11');
    if (c.custody.kind !== 'pkcs11') return;
    expect(c.custody.pin).toBeInstanceOf(Secret);
    expect(c.custody.pin.reveal()).toBe(PIN);
    expect(c.custody.module).toBe('/usr/lib/softhsm/libsofthsm2.so');
    expect(c.custody.token).toEqual({ label: 'keyanchor' });
    expect(c.custody.kekLabel).toBe('keyanchor-kek');
    expect(c.custody.wrapMechanism).toBe('AES_KEY_WRAP_PAD');
    expect(c.custody.oaepHash).toBe('SHA-256');
    expect(c.custody.sessions).toBe(4);
  });

  it('a missing environment variable is a problem', () => {
    expect(problemsOf(() => parseConfig(PKCS11, { file: 'c.yaml', env: {} }))).toEqual([
      'c.yaml custody.pin: environment variable KA_TEST_PIN is not set',
    ]);
  });

  it('an empty environment variable is a problem', () => {
    expect(problemsOf(() => parseConfig(PKCS11, { file: 'c.yaml', env: { KA_TEST_PIN: '' } }))).toEqual([
      'c.yaml custody.pin: environment variable KA_TEST_PIN is not set',
    ]);
  });

  it('a PIN written in the config itself is refused', () => {
    const text = PKCS11.replace('pin: { env: KA_TEST_PIN }', `pin: "${PIN}"`);
    const problems = problemsOf(() => parseConfig(text, { file: 'c.yaml', env: { KA_TEST_PIN: PIN } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^c\.yaml:5:\d+ custody\.pin: /);
    expect(problems.join('\n')).not.toContain(PIN);
  });

  it('resolves from a file relative to the config file, trimmed', () => {
    const sub = path.join(dir, 'pinfile');
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, 'pin.txt'), `${PIN}\n`, { mode: 0o600 });
    const text = PKCS11.replace('pin: { env: KA_TEST_PIN }', 'pin: { file: pin.txt }');
    const c = parseConfig(text, { file: path.join(sub, 'keyanchor.yaml') });
    expect(c.custody.kind === 'pkcs11' && c.custody.pin.reveal()).toBe(PIN);
  });

  it('an unreadable PIN file is a problem', () => {
    const text = PKCS11.replace('pin: { env: KA_TEST_PIN }', 'pin: { file: no-such-pin.txt }');
    expect(problemsOf(() => parseConfig(text, { file: path.join(dir, 'keyanchor.yaml') }))).toEqual([
      `${path.join(dir, 'keyanchor.yaml')} custody.pin: cannot read the file no-such-pin.txt (ENOENT)`,
    ]);
  });

  it('never shows in JSON.stringify, util.inspect or String()', () => {
    const c = parseConfig(PKCS11, { file: 'c.yaml', env: { KA_TEST_PIN: PIN } });
    if (c.custody.kind !== 'pkcs11') throw new Error('expected pkcs11 custody');
    const renderings = [
      JSON.stringify(c),
      JSON.stringify(c, null, 2),
      inspect(c, { depth: 10 }),
      inspect(c, { depth: 10, showHidden: true }),
      inspect(c.custody.pin, { customInspect: false, showHidden: true }),
      String(c),
      String(c.custody.pin),
      `${c.custody.pin}`,
      JSON.stringify(c.custody),
    ];
    for (const r of renderings) expect(r).not.toContain(PIN);
    expect(JSON.parse(JSON.stringify(c)).custody.pin).toBe('[redacted]');
    expect(inspect(c, { depth: 10 })).toContain('Secret([redacted])');
    expect(String(c.custody.pin)).toBe('[redacted]');
  });
});

describe('paths', () => {
  it('relative paths resolve against the config file directory, not the cwd', () => {
    const sub = path.join(dir, 'etc', 'keyanchor');
    mkdirSync(sub, { recursive: true });
    const file = path.join(sub, 'keyanchor.yaml');
    writeFileSync(file, 'stateDir: ../../var/state\npolicyDir: policies\ntls: { cert: tls/server.pem, key: /abs/server.key }\n');
    const c = loadConfig(file, {});
    expect(c.configDir).toBe(sub);
    expect(c.stateDir).toBe(path.join(dir, 'var', 'state'));
    expect(c.policyDir).toBe(path.join(sub, 'policies'));
    expect(c.tls).toEqual({ cert: path.join(sub, 'tls', 'server.pem'), key: '/abs/server.key' });
  });

  it('the SQLite store file is under stateDir unless absolute; admin files are relative to the config file', () => {
    const file = path.join(dir, 'keyanchor.yaml');
    expect(parseConfig('stateDir: st\n', { file }).store).toMatchObject({ kind: 'sqlite', file: path.join(dir, 'st', 'keyanchor.db') });
    expect(parseConfig('stateDir: st\nstore: { kind: sqlite, file: db/k.db }\n', { file }).store).toMatchObject({ file: path.join(dir, 'st', 'db', 'k.db') });
    expect(parseConfig('store: { kind: sqlite, file: /var/lib/ka.db }\n', { file }).store).toMatchObject({ file: '/var/lib/ka.db' });
    expect(parseConfig('admin: { enabled: true, mtls: { ca: ca.pem } }\n', { file }).admin).toEqual({ enabled: true, mtls: { ca: path.join(dir, 'ca.pem') } });
  });

  it('a PostgreSQL store: the password from env or a file, wrapped in a Secret; never in the URL; TLS files relative to the config', () => {
    const file = path.join(dir, 'keyanchor.yaml');
    writeFileSync(path.join(dir, 'db-pw'), 'from-a-file\n');
    const c = parseConfig('store: { kind: postgres, url: "postgres://keyanchor@db:5432/keyanchor", password: { env: KA_DB_PW }, tls: { ca: db-ca.pem } }\n', { file, env: { KA_DB_PW: 'hunter2' } });
    expect(c.store.kind).toBe('postgres');
    const pg = c.store as Extract<typeof c.store, { kind: 'postgres' }>;
    expect(pg.password).toBeInstanceOf(Secret);
    expect(pg.password!.reveal()).toBe('hunter2');
    expect(JSON.stringify(c)).not.toContain('hunter2');
    expect(inspect(c, { depth: 10 })).not.toContain('hunter2');
    expect(pg).toMatchObject({ url: 'postgres://keyanchor@db:5432/keyanchor', tls: { ca: path.join(dir, 'db-ca.pem') }, pool: { max: 10, acquireTimeoutMs: 2000 }, statementTimeoutMs: 2000 });
    const fromFile = parseConfig('store: { kind: postgres, url: "postgres://k@db/k", password: { file: db-pw } }\n', { file });
    expect((fromFile.store as typeof pg).password!.reveal()).toBe('from-a-file');
    expect(() => parseConfig('store: { kind: postgres, url: "postgres://k:secret@db/k" }\n', { file })).toThrow(/put the password in store\.password/);
    expect(() => parseConfig('store: { kind: postgres, url: "postgres://k@db/k", password: { env: NOPE } }\n', { file, env: {} })).toThrow(/store\.password: environment variable NOPE is not set/);
    expect(() => parseConfig('store: { kind: postgres, url: "mysql://k@db/k" }\n', { file })).toThrow(/store\.url/);
    expect(() => parseConfig('store: { kind: sqlite, url: "postgres://k@db/k" }\n', { file })).toThrow(/unknown key "url"/);
  });

  it('a relative --config file name resolves against the cwd first', () => {
    const c = parseConfig('stateDir: s\n', { file: 'conf/keyanchor.yaml' });
    expect(c.configDir).toBe(path.resolve('conf'));
    expect(c.stateDir).toBe(path.resolve('conf', 's'));
  });
});

describe('the controls: alarms.webhook, metrics, server.maxAttestationsInFlight', () => {
  const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  it("the alarm webhook's secret from env or a file, wrapped in a Secret; its CA relative to the config", () => {
    const file = path.join(dir, 'hooks.yaml');
    writeFileSync(path.join(dir, 'hook-secret'), `${SECRET}\n`);
    writeFileSync(path.join(dir, 'hook-ca.pem'), 'PEM');
    const c = parseConfig('alarms: { webhook: { url: "https://hooks.example/keyanchor", secret: { env: KA_HOOK }, ca: hook-ca.pem, maxAttempts: 3 } }\n', { file, env: { KA_HOOK: SECRET } });
    expect(c.alarms.webhook).toMatchObject({ url: 'https://hooks.example/keyanchor', ca: 'PEM', maxAttempts: 3, maxQueue: 1000, timeoutMs: 5000 });
    expect(c.alarms.webhook!.secret.reveal()).toBe(SECRET);
    expect(JSON.stringify(c)).not.toContain(SECRET.slice(6));
    expect(parseConfig('alarms: { webhook: { url: "http://127.0.0.1:9/h", secret: { file: hook-secret } } }\n', { file }).alarms.webhook!.secret.reveal()).toBe(SECRET);
  });

  it('a missing or malformed secret, a bad URL, an unknown key: located problems; --schema-only reads no secret', () => {
    const file = path.join(dir, 'hooks.yaml');
    expect(() => parseConfig('alarms: { webhook: { url: "https://h.example/", secret: { env: NOPE } } }\n', { file, env: {} })).toThrow(`${file} alarms.webhook.secret: environment variable NOPE is not set`);
    expect(() => parseConfig('alarms: { webhook: { url: "https://h.example/", secret: { env: S } } }\n', { file, env: { S: 'not-a-whsec' } })).toThrow(`${file} alarms.webhook.secret: a webhook secret is "whsec_" followed by the base64 of at least 24 random bytes`);
    expect(() => parseConfig('alarms: { webhook: { url: "ftp://h.example/", secret: { env: S } } }\n', { file })).toThrow(/hooks\.yaml:1:\d+ alarms\.webhook\.url: /);
    expect(() => parseConfig('alarms: { email: x }\n', { file })).toThrow(/hooks\.yaml:1:\d+ alarms\.email: unknown key "email"/);
    expect(parseConfig('alarms: { webhook: { url: "https://h.example/", secret: { env: NOPE } } }\n', { file, env: {}, resolveSecrets: false }).alarms.webhook!.url).toBe('https://h.example/');
  });

  it('metrics on a separate listener, or off; the in-flight cap within bounds', () => {
    expect(parseConfig('metrics: { listen: { port: 9464 } }\n').metrics).toEqual({ enabled: true, listen: { host: '127.0.0.1', port: 9464 } });
    expect(parseConfig('metrics: { enabled: false }\n').metrics).toEqual({ enabled: false });
    expect(() => parseConfig('server: { maxAttestationsInFlight: 0 }\n')).toThrow(/server\.maxAttestationsInFlight: Too small/);
  });
});
