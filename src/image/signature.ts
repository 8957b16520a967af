/**
 * Publishers' signatures on their checksum files, checked with gpgv against a keyring already on
 * the host (installed by a distribution package), never one fetched from the same place as the
 * files. Where none is published or no keyring is at hand, the image is verified against a
 * same-origin checksum only, and kvmtest says so.
 */
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import createDebug from 'debug';
import { execa } from 'execa';
import { kvmtestError } from '../errors.js';
import { type FetchTextOptions, fetchBytes } from './download/index.js';

const debug = createDebug('kvmtest:image');

/** How a publisher signs a checksum file, as the catalog records it. */
export type SignatureSource =
  /** The publisher publishes no signature for these files. */
  | { kind: 'none-published'; note: string }
  /** The publisher signs, in a way kvmtest does not check (yet). */
  | { kind: 'unsupported'; note: string }
  /** The checksum file is PGP clear-signed (Fedora's CHECKSUM). */
  | { kind: 'clearsigned'; keyrings: string[]; package: string }
  /** A detached signature of the checksum file beside it (Ubuntu's SHA256SUMS.gpg). */
  | { kind: 'detached'; url: string; keyrings: string[]; package: string };

export type SignatureStatus = 'verified' | 'none-published' | 'unverified-no-keyring' | 'unverified-unsupported';

export interface SignatureCheck {
  status: SignatureStatus;
  /** One sentence for the user: whose key, or why only a same-origin checksum vouches for the image. */
  detail: string;
}

/** The first keyring of the list present on this host. */
export async function findKeyring(candidates: readonly string[]): Promise<string | undefined> {
  for (const path of candidates)
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return path;
  return undefined;
}

/** What a pull of an entry with this signature source would check, on this host (no network). */
export async function signaturePlan(signature: SignatureSource | undefined): Promise<SignatureCheck> {
  if (!signature) return { status: 'unverified-unsupported', detail: 'verified against a same-origin checksum only: the catalog entry names no signature' };
  if (signature.kind === 'none-published') return { status: 'none-published', detail: `verified against a same-origin checksum only: ${signature.note}` };
  if (signature.kind === 'unsupported') return { status: 'unverified-unsupported', detail: `verified against a same-origin checksum only: ${signature.note}` };
  const keyring = await findKeyring(signature.keyrings);
  if (!keyring) {
    return {
      status: 'unverified-no-keyring',
      detail: `verified against a same-origin checksum only: the publisher signs it, but no keyring is installed (${signature.keyrings.join(' or ')}; package ${signature.package})`,
    };
  }
  return { status: 'verified', detail: `signature to be checked with ${keyring}` };
}

/**
 * The checksum file's text that a signature vouches for: for a clear-signed file only the signed
 * part (what gpgv outputs), for a detached signature the whole file once gpgv accepts it. A bad
 * signature is final: SIGNATURE_INVALID. Without a keyring, the text as fetched.
 */
export async function verifiedChecksums(text: Buffer, url: string, signature: SignatureSource | undefined, fetch: FetchTextOptions): Promise<{ text: string; check: SignatureCheck }> {
  const plan = await signaturePlan(signature);
  if (plan.status !== 'verified' || !signature || (signature.kind !== 'clearsigned' && signature.kind !== 'detached')) return { text: text.toString('utf8'), check: plan };
  const keyring = (await findKeyring(signature.keyrings))!;
  const detached = signature.kind === 'detached' ? await fetchBytes(signature.url, fetch) : undefined;
  const { signed, signer } = await gpgv(text, detached, keyring, signature.kind === 'detached' ? signature.url : url);
  return { text: signed.toString('utf8'), check: { status: 'verified', detail: `checksum file signed by key ${signer} (keyring ${keyring})` } };
}

/** Runs gpgv in a private directory: the signed bytes and the signing key's fingerprint, or SIGNATURE_INVALID. */
export async function gpgv(data: Buffer, signature: Buffer | undefined, keyring: string, what: string): Promise<{ signed: Buffer; signer: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kvmtest-gpgv-'));
  try {
    const ring = join(dir, 'keyring.gpg');
    await writeFile(ring, await binaryKeyring(keyring));
    await writeFile(join(dir, 'data'), data);
    const files = signature ? [join(dir, 'sig'), join(dir, 'data')] : [join(dir, 'data')];
    if (signature) await writeFile(join(dir, 'sig'), signature);
    const output = signature ? [] : ['--output', join(dir, 'signed')];
    const result = await execa('gpgv', ['--homedir', dir, '--keyring', ring, '--status-fd', '1', ...output, ...files], { reject: false, encoding: 'utf8' });
    const valid = /^\[GNUPG:\] VALIDSIG ([0-9A-F]+)/m.exec(result.stdout);
    debug('gpgv %s: exit %s %s', what, result.exitCode, result.stderr);
    if (result.exitCode !== 0 || !valid) {
      const why = result.failed && (result as { code?: string }).code === 'ENOENT' ? 'gpgv is not installed (package gpgv)' : result.stderr.trim().split('\n').slice(-2).join('; ');
      throw kvmtestError('SIGNATURE_INVALID', `the signature of ${what} does not verify against ${keyring}: ${why}. Nothing was downloaded`);
    }
    const signed = signature ? data : await readFile(join(dir, 'signed'));
    return { signed, signer: valid[1]! };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** gpgv reads binary keyrings only: an armored one (RPM-GPG-KEY-*, *.asc) is decoded first. */
async function binaryKeyring(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  return bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN PGP') ? dearmor(bytes.toString('latin1')) : bytes;
}

/** The binary packets of every ASCII-armored block in text (headers and CRC lines dropped). Pure. */
export function dearmor(text: string): Buffer {
  const out: Buffer[] = [];
  for (const block of text.matchAll(/-----BEGIN PGP [A-Z ]+-----\r?\n([\s\S]*?)-----END PGP [A-Z ]+-----/g)) {
    const lines = block[1]!.split(/\r?\n/);
    const body = lines.slice(lines.findIndex((l) => l.trim() === '') + 1); // after the armor headers
    out.push(Buffer.from(body.filter((l) => !l.startsWith('=')).join(''), 'base64'));
  }
  return Buffer.concat(out);
}
