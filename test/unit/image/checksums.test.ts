import { describe, expect, it } from 'vitest';
import { parseChecksumFile } from '../../../src/image/checksums.js';
import { nameDigest } from '../fixtures/digest.js';

describe('parseChecksumFile', () => {
  it('reads a Debian SHA512SUMS (GNU, two spaces)', () => {
    const names = [
      'debian-12-genericcloud-amd64.json',
      'debian-12-genericcloud-amd64.qcow2',
      'debian-12-genericcloud-amd64.raw',
      'debian-12-genericcloud-amd64.tar.xz',
      'debian-12-genericcloud-arm64.qcow2',
      'debian-12-generic-amd64.qcow2',
    ];
    const text = names.map((n) => `${nameDigest('sha512', n)}  ${n}\n`).join('');
    expect(parseChecksumFile(text, 'sha512sums', 'sha512', 'debian-12-genericcloud-amd64.qcow2')).toBe(nameDigest('sha512', 'debian-12-genericcloud-amd64.qcow2'));
    expect(parseChecksumFile(text, 'sha512sums', 'sha512', 'debian-12-genericcloud-arm64.qcow2')).toBe(nameDigest('sha512', 'debian-12-genericcloud-arm64.qcow2'));
  });

  it('reads an Ubuntu SHA256SUMS (GNU binary mode, `*NAME`) and does not confuse names sharing a prefix', () => {
    const names = [
      'ubuntu-24.04-server-cloudimg-amd64-root.tar.xz',
      'ubuntu-24.04-server-cloudimg-amd64.img',
      'ubuntu-24.04-server-cloudimg-amd64.img.manifest',
      'ubuntu-24.04-server-cloudimg-amd64.ova',
      'ubuntu-24.04-server-cloudimg-arm64.img',
    ];
    const text = names.map((n) => `${nameDigest('sha256', n)} *${n}\n`).join('');
    expect(parseChecksumFile(text, 'sha256sums', 'sha256', 'ubuntu-24.04-server-cloudimg-amd64.img')).toBe(nameDigest('sha256', 'ubuntu-24.04-server-cloudimg-amd64.img'));
  });

  const fedora = [
    '-----BEGIN PGP SIGNED MESSAGE-----',
    'Hash: SHA256',
    '',
    '# Fedora-Cloud-Base-AmazonEC2-41-1.4.x86_64.raw.xz: 409446056 bytes',
    `SHA256 (Fedora-Cloud-Base-AmazonEC2-41-1.4.x86_64.raw.xz) = ${nameDigest('sha256', 'ec2')}`,
    '# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 491716608 bytes',
    'SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = 6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2',
    '# Fedora-Cloud-Base-UKI-41-1.4.x86_64.qcow2: 497549312 bytes',
    `SHA256 (Fedora-Cloud-Base-UKI-41-1.4.x86_64.qcow2) = ${nameDigest('sha256', 'uki')}`,
    '-----BEGIN PGP SIGNATURE-----',
    '',
    'iQIzBAEBCAAdFiEEeH6ba3Wy5bdaIWAo4xnEQTVjTFsFAmcqDzwACgkQ4xnEQTVj',
    'TFvKBg/+JH1xWkNs0oqbXa0YexampleSignatureBase64Only==',
    '=Xx1y',
    '-----END PGP SIGNATURE-----',
    '',
  ];

  it('reads a Fedora CHECKSUM: PGP clear-signed BSD lines with size comments', () => {
    const text = fedora.join('\n');
    expect(parseChecksumFile(text, 'bsd', 'sha256', 'Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2')).toBe('6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2');
    expect(parseChecksumFile(text, 'bsd', 'sha256', 'Fedora-Cloud-Base-Generic-41-1.4.aarch64.qcow2')).toBeUndefined();
  });

  it('reads CRLF files the same', () => {
    expect(parseChecksumFile(fedora.join('\r\n'), 'bsd', 'sha256', 'Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2')).toBe('6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2');
    const gnu = `${nameDigest('sha512', 'a')}  debian-13-genericcloud-amd64.qcow2\r\n`;
    expect(parseChecksumFile(gnu, 'sha512sums', 'sha512', 'debian-13-genericcloud-amd64.qcow2')).toBe(nameDigest('sha512', 'a'));
  });

  it('reads an AlmaLinux CHECKSUM (BSD, the -latest name listed beside the dated one), in any case', () => {
    const hex = nameDigest('sha256', 'alma');
    const text = [
      '# AlmaLinux-9-GenericCloud-9.6-20250522.x86_64.qcow2: 506920960 bytes',
      `SHA256 (AlmaLinux-9-GenericCloud-9.6-20250522.x86_64.qcow2) = ${hex}`,
      '# AlmaLinux-9-GenericCloud-latest.x86_64.qcow2: 506920960 bytes',
      `sha256 (AlmaLinux-9-GenericCloud-latest.x86_64.qcow2) = ${hex.toUpperCase()}`,
      '',
    ].join('\n');
    expect(parseChecksumFile(text, 'bsd', 'sha256', 'AlmaLinux-9-GenericCloud-latest.x86_64.qcow2')).toBe(hex);
    // the tag names the algorithm: a SHA256 line is no SHA512 digest
    expect(parseChecksumFile(text, 'bsd', 'sha512', 'AlmaLinux-9-GenericCloud-latest.x86_64.qcow2')).toBeUndefined();
  });

  it('reads a Rocky .CHECKSUM (BSD, one image)', () => {
    const text =
      '# Rocky-9-GenericCloud-Base.latest.x86_64.qcow2: 645988352 bytes\nSHA256 (Rocky-9-GenericCloud-Base.latest.x86_64.qcow2) = 92c206cc6f790c61583247eefe87890f8828420662c17cacf247cec78ab4eec8\n';
    expect(parseChecksumFile(text, 'bsd', 'sha256', 'Rocky-9-GenericCloud-Base.latest.x86_64.qcow2')).toBe('92c206cc6f790c61583247eefe87890f8828420662c17cacf247cec78ab4eec8');
  });

  const alpineHex = '5b22a46e9aa6bbacf585c055e87362c8be1993e53c121bdaf74203ac3490c70bdbbf714df4276eef36184ea8c11fd7cd3b28c9ccc74f6a9a82c430d441fa2f95';

  it('reads an Alpine .sha512 (single: the hash, then two spaces and the name, or the hash alone)', () => {
    const name = 'nocloud_alpine-3.21.7-x86_64-bios-cloudinit-r0.qcow2';
    expect(parseChecksumFile(`${alpineHex}  ${name}\n`, 'single', 'sha512', name)).toBe(alpineHex);
    expect(parseChecksumFile(`${alpineHex}\n`, 'single', 'sha512', name)).toBe(alpineHex);
    expect(parseChecksumFile(`${alpineHex.toUpperCase()}`, 'single', 'sha512', name)).toBe(alpineHex);
  });

  it("reads openSUSE's .sha256 whichever name it lists (the symlink or the versioned build behind it)", () => {
    const symlink = 'openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2';
    const plain = `0f7f09a9a083088b51aa365fe0e4310e6b156c2153d6aa03a77b81eee884e52a ${symlink}\n`;
    const versioned = '95b20098fbb0e5456bf1529387c8b9513056405256549e9f2f9f35d367ac8c05  openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build13.327.qcow2\n';
    expect(parseChecksumFile(plain, 'single', 'sha256', symlink)).toBe('0f7f09a9a083088b51aa365fe0e4310e6b156c2153d6aa03a77b81eee884e52a');
    expect(parseChecksumFile(versioned, 'single', 'sha256', symlink)).toBe('95b20098fbb0e5456bf1529387c8b9513056405256549e9f2f9f35d367ac8c05');
    // why the catalog reads it as single: by name, the versioned file hides the digest
    expect(parseChecksumFile(plain, 'sha256sums', 'sha256', symlink)).toBe('0f7f09a9a083088b51aa365fe0e4310e6b156c2153d6aa03a77b81eee884e52a');
    expect(parseChecksumFile(versioned, 'sha256sums', 'sha256', symlink)).toBeUndefined();
  });

  it('returns undefined for a name the file does not list', () => {
    const text = `${nameDigest('sha512', 'x')}  debian-12-genericcloud-amd64.qcow2\n`;
    expect(parseChecksumFile(text, 'sha512sums', 'sha512', 'debian-12-genericcloud-arm64.qcow2')).toBeUndefined();
    expect(parseChecksumFile('', 'single', 'sha512', 'x')).toBeUndefined();
    expect(parseChecksumFile('# nothing here\n', 'bsd', 'sha256', 'x')).toBeUndefined();
  });

  it('returns undefined for a digest of the wrong length for the algorithm', () => {
    const name = 'debian-12-genericcloud-amd64.qcow2';
    expect(parseChecksumFile(`${nameDigest('sha256', 'x')}  ${name}\n`, 'sha512sums', 'sha512', name)).toBeUndefined();
    expect(parseChecksumFile(`${nameDigest('sha512', 'x')}  ${name}\n`, 'sha256sums', 'sha256', name)).toBeUndefined();
    expect(parseChecksumFile(`SHA256 (${name}) = ${nameDigest('sha256', 'x').slice(1)}\n`, 'bsd', 'sha256', name)).toBeUndefined();
    expect(parseChecksumFile(`${alpineHex.slice(0, 64)}\n`, 'single', 'sha512', name)).toBeUndefined();
  });
});
