/**
 * Programmatic API of attest-agent, for the broker's end-to-end tests and benchmarks.
 * The CLI (cli.ts) is a thin layer over the same functions.
 */
export { attest, attestOnce, openAttestation, type AttestOptions, type AttestResult, type Opening } from './attest.js';
export { postJson, parseRetryAfter, DEFAULT_TIMEOUT_MS, type ClientOptions } from './client.js';
export { deliverKeys, isTmpfs, assertOnTmpfs, writeKeyFile, TMPFS_MAGIC, type Delivery } from './deliver.js';
export { AgentError, formatAgentError, LOCAL_CODES, type AgentErrorCode, type LocalCode } from './errors.js';
export { buildEvidence, buildPayload, type EvidenceInput, type KeyRequest, type WorkloadClaims } from './evidence.js';
export { runProgram, exitStatus, type RunOptions, type RunningProgram } from './exec.js';
export { canSwitchUser, checkIsolation, readableBy, resolveRunAs, type RunAs } from './isolation.js';
export { EXIT_CODES, EXIT_CODE_TABLE, exitCodeFor, formatExitCodeTable, type ExitCodeRow } from './exitCodes.js';
export { parseKeySpec, parseKeySpecs, type KeySpec, type KeyDestination } from './keySpecs.js';
export { measureFile, type Measurement } from './measure.js';
export { loadNodeIdentity, readNodeIdentity, algForKey, type NodeIdentity, type EvidenceAlg } from './nodeIdentity.js';
export { ociImageDigest, parseLayoutSpec, type LayoutSpec } from './oci.js';
export { prepareProgram, defaultWorkDir, type PreparedProgram } from './privateCopy.js';
export { createRecipient, chooseRecipientType, SUPPORTED_RECIPIENTS, type Recipient } from './recipient.js';
export { openReleasedKey, openReleasedKeys, zeroKeys } from './release.js';
export { withRetries, backoffDelay, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export { normaliseSignature, readSignatureFile, readCertChain, collectSignatures } from './signatures.js';
export { describeWorkload, imageDigest, resolveProgram, type ImageInputs } from './workload.js';
export { runCli } from './cli.js';
