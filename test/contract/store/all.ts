/** Every store contract suite, for one backend. */
import { auditContract } from './audit.contract.js';
import { auditCheckpointsContract } from './auditCheckpoints.contract.js';
import { auditSearchContract } from './auditSearch.contract.js';
import { auditTailContract } from './auditTail.contract.js';
import { auditTrailContract } from './auditTrail.contract.js';
import { changesContract } from './changes.contract.js';
import { countersContract } from './counters.contract.js';
import type { MakeStore } from './harness.js';
import { highWaterContract } from './highWater.contract.js';
import { keystoreContract } from './keystore.contract.js';
import { limitsContract } from './limits.contract.js';
import { nonceContract } from './nonces.contract.js';
import { suspensionsContract } from './suspensions.contract.js';

export function registerStoreContracts(make: MakeStore): void {
  nonceContract(make);
  limitsContract(make);
  countersContract(make);
  suspensionsContract(make);
  keystoreContract(make);
  auditContract(make);
  auditSearchContract(make);
  auditTailContract(make);
  auditCheckpointsContract(make);
  auditTrailContract(make);
  highWaterContract(make);
  changesContract(make);
}
