/**
 * A recording wrapper around a real pkcs11js module, handed to the backend through its test seam
 * (`internals.loadModule`). It records every C_* call's name, attribute templates and outcome, so
 * tests can check what the backend asked the token to do.
 */
import { loadPkcs11js, type Pkcs11Internals, type Pkcs11Module } from '../../../src/custody/pkcs11/library.js';

export interface Attribute {
  type: number;
  value?: unknown;
}

export interface SpyCall {
  name: string;
  /** Every argument that is an attribute template, in order. */
  templates: Attribute[][];
  args: unknown[];
  result?: unknown;
  error?: unknown;
}

/** Calls that return the handle of a new object. */
export const CREATING = new Set(['C_GenerateKey', 'C_GenerateKeyAsync', 'C_UnwrapKey', 'C_UnwrapKeyAsync', 'C_CreateObject', 'C_CopyObject', 'C_DeriveKey', 'C_DeriveKeyAsync']);

const isTemplate = (a: unknown): a is Attribute[] =>
  Array.isArray(a) && a.every((x) => typeof x === 'object' && x !== null && typeof (x as Attribute).type === 'number');

export interface Spy {
  calls: SpyCall[];
  /** The real, unwrapped module (for tests that sabotage the backend behind its back). */
  real: Pkcs11Module | undefined;
  internals: Pkcs11Internals;
  named(name: string): SpyCall[];
}

export function createSpy(): Spy {
  const spy: Spy = {
    calls: [],
    real: undefined,
    internals: {
      loadModule: async (modulePath) => {
        const real = await loadPkcs11js(modulePath);
        spy.real = real;
        return wrap(real, spy.calls);
      },
    },
    named: (name) => spy.calls.filter((c) => c.name === name),
  };
  return spy;
}

function wrap(real: Pkcs11Module, calls: SpyCall[]): Pkcs11Module {
  return new Proxy(real, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      if (typeof prop !== 'string' || !prop.startsWith('C_') || typeof value !== 'function') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (...args: unknown[]) => {
        const call: SpyCall = { name: prop, templates: args.filter(isTemplate), args };
        calls.push(call);
        try {
          const out = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (out instanceof Promise) {
            return out.then(
              (r) => ((call.result = r), r),
              (e) => {
                call.error = e;
                throw e;
              },
            );
          }
          call.result = out;
          return out;
        } catch (e) {
          call.error = e;
          throw e;
        }
      };
    },
  });
}
