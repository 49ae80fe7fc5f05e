import { randomBytes } from 'node:crypto';
import { SoftwareCustodian } from '../../src/custody/software.js';
import { custodianContract } from './custodian.contract.js';

custodianContract('software', async () => new SoftwareCustodian(randomBytes(32)));
