/**
 * Publisher signatures and certificates, read from files and normalised for the evidence.
 * A signature file may hold the raw signature bytes (DER for ECDSA, as `openssl dgst -sign`
 * writes) or their base64 text (what `cosign sign-blob` prints); both become base64url bytes.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { BinarySignatureSchema, ImageSignatureSchema, X5c } from '../../src/protocol.js';
import { AgentError } from './errors.js';

export type BinarySignature = z.infer<typeof BinarySignatureSchema>;
export type ImageSignature = z.infer<typeof ImageSignatureSchema>;

const MAX_SIG_FILE = 16 * 1024;
const MAX_PAYLOAD_FILE = 12 * 1024; // base64url of 12 KiB fits the protocol's 16 384 chars
const MAX_CERT_FILE = 64 * 1024;
const BASE64_TEXT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL_TEXT = /^[A-Za-z0-9_-]+$/;

const unreadable = (msg: string, cause?: unknown) =>
  new AgentError('signature_unreadable', msg, cause === undefined ? {} : { cause });

async function readCapped(path: string, max: number): Promise<Buffer> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > max) throw new Error(`larger than ${max} bytes`);
    return await readFile(path);
  } catch (err) {
    throw unreadable(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
}

/**
 * Signature bytes from a file's content: base64 (or base64url) text, surrounding whitespace and
 * line breaks allowed, is decoded; anything else is taken as the raw bytes. A DER signature is
 * never mistaken for text, since its INTEGER tags (0x02) are not base64 characters.
 */
export function normaliseSignature(content: Buffer): Buffer {
  const text = content.toString('latin1').replace(/\s+/g, '');
  if (text.length > 0 && (BASE64_TEXT.test(text) || BASE64URL_TEXT.test(text))) {
    const decoded = Buffer.from(text, BASE64_TEXT.test(text) ? 'base64' : 'base64url');
    if (decoded.length > 0) return decoded;
  }
  if (content.length === 0) throw unreadable('signature file is empty');
  return content;
}

export async function readSignatureFile(path: string): Promise<Buffer> {
  const bytes = normaliseSignature(await readCapped(path, MAX_SIG_FILE));
  if (bytes.length > 1536) throw unreadable(`${path}: signature longer than 1536 bytes`);
  return bytes;
}

/** A PEM certificate chain, leaf first, as JWS `x5c` (standard base64 DER). */
export async function readCertChain(path: string): Promise<string[]> {
  const pem = (await readCapped(path, MAX_CERT_FILE)).toString('utf8');
  return pemChainToX5c(pem, path, (msg, cause) => unreadable(msg, cause));
}

export function pemChainToX5c(
  pem: string,
  label: string,
  fail: (msg: string, cause?: unknown) => Error,
): string[] {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw fail(`${label} holds no PEM certificate`);
  const x5c = blocks.map((m, i) => {
    const der = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
    try {
      new X509Certificate(der);
    } catch (err) {
      throw fail(`${label}: certificate #${i + 1} does not parse`, err);
    }
    return der.toString('base64');
  });
  if (!X5c.safeParse(x5c).success) throw fail(`${label}: a chain must hold 1 to 5 certificates`);
  return x5c;
}

export interface SignatureInputs {
  /** `--sig` files; when empty, `<program>.sig` is used if it exists. */
  sigFiles: string[];
  programPath: string;
  /** `--sig-cert`: adds x5c to every signature. */
  sigCert?: string;
  /** `--image-sig PAYLOAD:SIG` pairs. */
  imageSigs: { payload: string; sig: string }[];
}

export async function defaultSigFiles(programPath: string): Promise<string[]> {
  const candidate = `${programPath}.sig`;
  const st = await stat(candidate).catch(() => undefined);
  return st?.isFile() ? [candidate] : [];
}

export async function collectSignatures(
  inputs: SignatureInputs,
): Promise<{ binary: BinarySignature[]; image: ImageSignature[] }> {
  const files = inputs.sigFiles.length > 0 ? inputs.sigFiles : await defaultSigFiles(inputs.programPath);
  const x5c = inputs.sigCert === undefined ? undefined : await readCertChain(inputs.sigCert);
  const withCert = <T extends object>(s: T): T => (x5c ? { ...s, x5c } : s);
  const binary: BinarySignature[] = [];
  for (const f of files) binary.push(withCert({ sig: (await readSignatureFile(f)).toString('base64url') }));
  const image: ImageSignature[] = [];
  for (const { payload, sig } of inputs.imageSigs) {
    const payloadBytes = await readCapped(payload, MAX_PAYLOAD_FILE);
    if (payloadBytes.length === 0) throw unreadable(`${payload}: empty signature payload`);
    image.push(withCert({
      payload: payloadBytes.toString('base64url'),
      sig: (await readSignatureFile(sig)).toString('base64url'),
    }));
  }
  if (binary.length > 8 || image.length > 8) throw unreadable('at most 8 signatures of each kind');
  return { binary, image };
}
