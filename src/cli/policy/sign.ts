/**
 * `keyanchor policy sign` and `keyanchor policy pae`: making a signed bundle of a policy directory
 * (policy.dsse beside the files), adding co-signatures for a k-of-n root, and printing the exact
 * bytes to sign for signers who use openssl or a hardware token instead of this CLI.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { writeFileAtomic } from '../../fsAtomic.js';
import { BUNDLE_FILE, EnvelopeError, parseEnvelope } from '../../policy/bundle/dsse.js';
import { ManifestError, parseManifest, type RootData } from '../../policy/bundle/manifest.js';
import { addSignature, makeBundle, paeOf, parseExpiry, SignError } from '../../policy/bundle/sign.js';
import { policyPrivateKey, policyPublicKey, SigningKeyError } from '../../policy/bundle/signingKeys.js';
import { rootFromPems, RootError } from '../../policy/bundle/trustRoot.js';
import { compilePolicy } from '../../policy/compile.js';
import { readPolicyTree } from '../../policy/files.js';
import { EXIT, fail } from '../context.js';
import { collect, policyTarget, printProblems } from './common.js';

interface SignOptions {
  key?: string[];
  signer?: string[];
  version?: number;
  expires?: string;
  add?: boolean;
  signature?: string;
  publicKey?: string;
  newRootKey?: string[];
  newRootThreshold?: number;
  newSignerKey?: string[];
  newSignerThreshold?: number;
  newRootVersion?: number;
}

const read = (file: string, what: string): Buffer => {
  try {
    return readFileSync(path.resolve(file));
  } catch (e) {
    fail(`${what} ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.usage);
  }
};

export function signCommand(): Command {
  return new Command('sign')
    .description('sign a policy directory: writes DIR/policy.dsse (a DSSE envelope over the manifest of every file)')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .option('--key <pem>', 'a private key that signs now (repeat for several)', collect)
    .option('--signer <pem>', 'the public key of a co-signer who will add a signature later (repeat)', collect)
    .option('--version <n>', 'the bundle version: above every version accepted before', (v) => Number(v))
    .option('--expires <when>', 'a duration (30d, 12h, 90m, 2w) or an RFC 3339 time')
    .option('--new-root-key <pem>', 'change the root: a public key of the new root (repeat; default: the current root keys)', collect)
    .option('--new-root-threshold <n>', 'how many keys of the new root must sign a root change', (v) => Number.parseInt(v, 10))
    .option('--new-signer-key <pem>', 'change the root: an online signer the new root certifies to sign bundles (repeat)', collect)
    .option('--new-signer-threshold <n>', 'how many signers must sign a bundle (default 1)', (v) => Number.parseInt(v, 10))
    .option('--new-root-version <n>', 'the new root version (default: the carried root version + 1)', (v) => Number.parseInt(v, 10))
    .option('--add', 'add one signature to the existing bundle instead of making a new one')
    .option('--signature <file>', 'with --add: a signature made elsewhere over `keyanchor policy pae` (raw bytes)')
    .option('--public-key <pem>', 'with --add --signature: the public key that made it')
    .action((dir: string | undefined, o: SignOptions, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      const envelope = path.join(t.dir, BUNDLE_FILE);
      try {
        const out = o.add ? addOne(envelope, o) : signNew(t.dir, t.vars, o);
        if (out === undefined) return;
        writeFileAtomic(envelope, out, 0o644);
        process.stdout.write(`${o.add ? 'added a signature to' : 'signed'} ${path.relative(process.cwd(), envelope) || envelope}\n`);
      } catch (e) {
        if (e instanceof SignError || e instanceof SigningKeyError || e instanceof RootError || e instanceof EnvelopeError || e instanceof ManifestError) fail(e.message, EXIT.invalid);
        throw e;
      }
    });
}

function signNew(dir: string, vars: Record<string, string>, o: SignOptions): string | undefined {
  if (o.version === undefined || o.expires === undefined) fail('give --version and --expires (or --add)', EXIT.usage);
  const tree = readPolicyTree(dir);
  // Only a policy the broker would accept is worth signing (signed: every file inside the directory).
  const { problems } = compilePolicy(tree, { vars, insideOnly: true });
  if (tree.problems.length || problems.length) {
    printProblems([...tree.problems, ...problems]);
    return undefined;
  }
  const root = rootFor(dir, o);
  return makeBundle(tree.files, {
    version: o.version,
    expires: parseExpiry(o.expires, Date.now()),
    keys: (o.key ?? []).map((f) => policyPrivateKey(read(f, 'key'))),
    cosigners: (o.signer ?? []).map((f) => policyPublicKey(read(f, 'signer'))),
    ...(root ? { root } : {}),
  });
}

/**
 * The root the new bundle carries: a new one when --new-root-key/--new-signer-key ask for it
 * (version: the carried one's + 1), else the one the previous bundle in the directory carried,
 * so that every bundle names the root it is signed under.
 */
function rootFor(dir: string, o: SignOptions): RootData | undefined {
  let carried: RootData | undefined;
  try {
    carried = parseManifest(parseEnvelope(readFileSync(path.join(dir, BUNDLE_FILE))).payload).root;
  } catch {
    carried = undefined; // no previous bundle, or one that is not valid: nothing to carry
  }
  if (!o.newRootKey?.length && !o.newSignerKey?.length) {
    if (carried) process.stderr.write(`carrying root version ${carried.version} (${carried.keys.length} key(s), threshold ${carried.threshold}${carried.signers ? `, ${carried.signers.keys.length} signer(s)` : ''}) from the previous bundle\n`);
    return carried;
  }
  const version = o.newRootVersion ?? (carried?.version ?? 1) + 1;
  const signers = o.newSignerKey?.length ? { pems: o.newSignerKey.map((f) => read(f, 'new signer key')), threshold: o.newSignerThreshold ?? 1 } : undefined;
  if (o.newRootKey?.length) return rootFromPems(o.newRootKey.map((f) => read(f, 'new root key')), o.newRootThreshold ?? 1, { version, ...(signers ? { signers } : {}) });
  if (!carried) fail('--new-signer-key without --new-root-key needs a previous bundle that names the root keys', EXIT.usage);
  const signerKeys = rootFromPems(signers!.pems, 1).keys;
  return { version, keys: carried.keys, threshold: carried.threshold, signers: { keys: signerKeys, threshold: signers!.threshold } };
}

function addOne(envelope: string, o: SignOptions): string {
  const env = read(envelope, 'bundle');
  if (o.signature) {
    if (!o.publicKey) fail('--signature needs --public-key', EXIT.usage);
    return addSignature(env, { publicKey: policyPublicKey(read(o.publicKey, 'public key')), sig: read(o.signature, 'signature') });
  }
  if (o.key?.length !== 1) fail('--add needs one --key, or --signature with --public-key', EXIT.usage);
  return addSignature(env, { privateKey: policyPrivateKey(read(o.key[0]!, 'key')) });
}

export function paeCommand(): Command {
  return new Command('pae')
    .description('print the bytes a co-signer signs (the DSSE PAE of DIR/policy.dsse), for openssl or a token')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .action((dir: string | undefined, _o: unknown, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      try {
        process.stdout.write(paeOf(read(path.join(t.dir, BUNDLE_FILE), 'bundle')));
      } catch (e) {
        if (e instanceof EnvelopeError) fail(e.message, EXIT.invalid);
        throw e;
      }
    });
}
