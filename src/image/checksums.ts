/** Reading publishers' checksum files. Pure: the text in, the hex for one file out. */

/** GNU `HEX  NAME` (sha256sum/sha512sum output), BSD `SHA256 (NAME) = HEX`, or one bare hash. */
export type ChecksumFormat = 'sha256sums' | 'sha512sums' | 'bsd' | 'single';
export type ChecksumAlgorithm = 'sha256' | 'sha512';

/** Hex digits of each digest: the one table the checksum files, image URLs and download options check against. */
export const HEX_LENGTH: Readonly<Record<ChecksumAlgorithm, number>> = { sha256: 64, sha512: 128 };

/**
 * The lowercase hex digest listed for `fileName`, or undefined when the file lists none of the
 * right length. Comments, PGP clear-sign armour (Fedora) and CRLF line ends are ignored.
 * `single` takes the first hash of the right length whatever name follows it: openSUSE's
 * `.sha256` may name the versioned build file behind the symlink that was downloaded.
 */
export function parseChecksumFile(text: string, format: ChecksumFormat, algorithm: ChecksumAlgorithm, fileName: string): string | undefined {
  const length = HEX_LENGTH[algorithm];
  for (const line of signedLines(text)) {
    const hex = format === 'single' ? singleHash(line) : format === 'bsd' ? bsdHash(line, algorithm, fileName) : gnuHash(line, fileName);
    if (hex !== undefined && hex.length === length && /^[0-9a-f]+$/.test(hex)) return hex;
  }
  return undefined;
}

/** The trimmed, non-empty, non-comment lines, without a PGP signature block or armour headers. */
function* signedLines(text: string): Generator<string> {
  let inHeaders = false;
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.trim();
    if (line === '-----BEGIN PGP SIGNED MESSAGE-----') {
      inHeaders = true; // "Hash: SHA256" and friends up to the first blank line
      continue;
    }
    if (inHeaders) {
      if (line === '') inHeaders = false;
      continue;
    }
    if (line === '-----BEGIN PGP SIGNATURE-----') return;
    if (line === '' || line.startsWith('#')) continue;
    yield line.startsWith('- ') ? line.slice(2) : line; // clear-signing dash-escapes lines that start with '-'
  }
}

/** `HEX  NAME`, `HEX *NAME` (binary mode, Ubuntu), or `HEX NAME` (a single space, some openSUSE files). */
function gnuHash(line: string, fileName: string): string | undefined {
  const match = /^\\?([0-9A-Fa-f]+) [ *]?(.+)$/.exec(line);
  if (!match || !sameName(match[2]!, fileName)) return undefined;
  return match[1]!.toLowerCase();
}

/** `SHA256 (NAME) = HEX`: the tag must name the algorithm, in any case. */
function bsdHash(line: string, algorithm: ChecksumAlgorithm, fileName: string): string | undefined {
  const match = /^(SHA256|SHA512) ?\((.+)\) ?= ?([0-9A-Fa-f]+)$/i.exec(line);
  if (!match || match[1]!.toLowerCase() !== algorithm || !sameName(match[2]!, fileName)) return undefined;
  return match[3]!.toLowerCase();
}

/** The first token when it is hex (Alpine's `.sha512`: the hash, optionally followed by a name). */
function singleHash(line: string): string | undefined {
  const token = line.split(/\s+/, 1)[0]!;
  return /^[0-9A-Fa-f]+$/.test(token) ? token.toLowerCase() : undefined;
}

function sameName(listed: string, fileName: string): boolean {
  const name = listed.trim();
  return name === fileName || name === `./${fileName}`;
}
