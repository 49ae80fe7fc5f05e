import { JoseError } from '../../../src/jose/index.js';

/** 'ok', or the JoseError code `f` throws (anything else is rethrown: a bug, not a refusal). */
export function code(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof JoseError) return e.code;
    throw e;
  }
}
