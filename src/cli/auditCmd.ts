/** `keyanchor audit …`: the audit trail in the state store (docs/operations.md, "The audit trail"). */
import { Command } from 'commander';
import { checkpointCommand, keyCommand } from './audit/checkpoint.js';
import { importCommand, pruneCommand } from './audit/prune.js';
import { searchCommand, tailCommand } from './audit/search.js';
import { verifyCommand } from './audit/verify.js';

export function auditCommand(): Command {
  const audit = new Command('audit').description('the hash-chained, checkpointed audit trail in the state store');
  for (const sub of [verifyCommand(), checkpointCommand(), keyCommand(), searchCommand(), tailCommand(), pruneCommand(), importCommand()]) audit.addCommand(sub);
  return audit;
}
