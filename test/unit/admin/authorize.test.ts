/**
 * authorize(policy, caller, target) as a table: team membership by any principal, owner prefixes,
 * security everywhere, the whole keystore for security only, listing, and default deny. Pure.
 */
import { describe, expect, it } from 'vitest';
import { authorize, requireAuthorized, teamsOf, visible, WHOLE_KEYSTORE } from '../../../src/admin/authorize.js';
import type { Caller, Principal } from '../../../src/admin/principal.js';
import { BrokerError } from '../../../src/errors.js';
import type { Team } from '../../../src/policy/types.js';

const teams: Team[] = [
  { name: 'payments', role: 'owner', keyPrefixes: ['payments/'], members: ['jwt:group:payments-eng', 'cert:uri:spiffe://corp/ci/payments'] },
  { name: 'payments-db', role: 'owner', keyPrefixes: ['payments/db-'], members: ['jwt:sub:dba@example.com'] },
  { name: 'search', role: 'owner', keyPrefixes: ['search/', 'index/'], members: ['jwt:sub:sam@example.com', 'cert:subject:O=Corp\nCN=search-ci'] },
  { name: 'secops', role: 'security', keyPrefixes: [], members: ['jwt:group:secops'] },
  // Not producible by the schema; proves a prefix without "/" can never match across owners.
  { name: 'sloppy', role: 'owner', keyPrefixes: ['pay'], members: ['jwt:sub:sloppy'] },
];
const policy = { teams };

const caller = (...principals: Principal[]): Caller => ({ principals, actor: principals[0]! });
const pat = caller('jwt:sub:pat@example.com', 'jwt:group:payments-eng');
const dba = caller('jwt:sub:dba@example.com');
const sam = caller('jwt:sub:sam@example.com');
const searchCi = caller('cert:subject:O=Corp\nCN=search-ci', 'cert:uri:spiffe://corp/ci/search');
const paymentsCi = caller('cert:subject:CN=ci', 'cert:uri:spiffe://corp/ci/payments');
const sec = caller('jwt:sub:sec@example.com', 'jwt:group:secops');
const both = caller('jwt:sub:lead@example.com', 'jwt:group:payments-eng', 'jwt:group:secops');
const nobody = caller('jwt:sub:nobody@example.com', 'jwt:group:everyone');
const sloppy = caller('jwt:sub:sloppy');
// The same strings under another namespace are other principals.
const impostor = caller('jwt:sub:payments-eng', 'jwt:group:sam@example.com', 'cert:uri:jwt:group:secops');

const names = (ts: Team[]) => ts.map((t) => t.name);

describe('authorize', () => {
  const table: Array<[string, Caller, string, string[]]> = [
    ['owner by group, own key', pat, 'payments/card-key', ['payments']],
    ['owner by group, another owner', pat, 'search/index', []],
    ['prefix is a string prefix of the whole name', pat, 'paymentsx/a', []],
    ['owner by sub, narrow prefix', dba, 'payments/db-main', ['payments-db']],
    ['narrow prefix does not cover the rest', dba, 'payments/card-key', []],
    ['owner with two prefixes (first)', sam, 'search/index', ['search']],
    ['owner with two prefixes (second)', sam, 'index/shard-1', ['search']],
    ['cert subject DN, exact', searchCi, 'search/index', ['search']],
    ['cert SAN URI', paymentsCi, 'payments/card-key', ['payments']],
    ['security, any key', sec, 'search/index', ['secops']],
    ['owner and security: both teams', both, 'payments/x', ['payments', 'secops']],
    ['no team', nobody, 'payments/x', []],
    ['namespaces do not mix', impostor, 'payments/x', []],
    ['a prefix without "/" matches nothing', sloppy, 'payments/x', []],
    ['whole keystore: owner', pat, WHOLE_KEYSTORE, []],
    ['whole keystore: security', sec, WHOLE_KEYSTORE, ['secops']],
    ['whole keystore: owner + security', both, WHOLE_KEYSTORE, ['secops']],
    ['whole keystore: no team', nobody, WHOLE_KEYSTORE, []],
  ];
  it.each(table)('%s', (_what, c, target, expected) => {
    expect(names(authorize(policy, c, target))).toEqual(expected);
  });

  it('requireAuthorized throws forbidden with the reason for the log only', () => {
    expect(names(requireAuthorized(policy, pat, 'payments/a'))).toEqual(['payments']);
    let err: unknown;
    try {
      requireAuthorized(policy, pat, 'search/index');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BrokerError);
    expect({ code: (err as BrokerError).code, status: (err as BrokerError).status }).toEqual({ code: 'forbidden', status: 403 });
    expect((err as BrokerError).reason).toBe('jwt:sub:pat@example.com may not act on search/index');
  });

  it('an empty policy denies everyone, security-looking principals included', () => {
    expect(authorize({ teams: [] }, sec, 'a/b')).toEqual([]);
    expect(authorize({ teams: [] }, sec, WHOLE_KEYSTORE)).toEqual([]);
  });
});

describe('teamsOf and visible', () => {
  const keys = ['index/shard-1', 'payments/card-key', 'payments/db-main', 'search/index', 'team/app-key'].map((name) => ({ name }));
  const seen = (c: Caller) => visible(policy, c, keys).map((k) => k.name);

  it('membership by any principal', () => {
    expect(names(teamsOf(policy, both))).toEqual(['payments', 'secops']);
    expect(names(teamsOf(policy, nobody))).toEqual([]);
  });
  it('owners see the keys under their prefixes, in order', () => {
    expect(seen(pat)).toEqual(['payments/card-key', 'payments/db-main']);
    expect(seen(dba)).toEqual(['payments/db-main']);
    expect(seen(sam)).toEqual(['index/shard-1', 'search/index']);
  });
  it('security sees every key; no team sees none', () => {
    expect(seen(sec)).toEqual(keys.map((k) => k.name));
    expect(seen(nobody)).toEqual([]);
    expect(seen(impostor)).toEqual([]);
  });
});
