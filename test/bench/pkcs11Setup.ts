import type { World } from '../helpers/world.js';

/** SoftHSM2 token and KEK for the PKCS#11 figures; undefined when SoftHSM2 is not installed. */
export async function pkcs11Setup(_w: World): Promise<{ custody: Record<string, unknown>; env: NodeJS.ProcessEnv; cleanup(): void } | undefined> {
  return undefined;
}
