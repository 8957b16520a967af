import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAPSULE_FILES, checkManifest, MANIFEST_MAX_BYTES, MANIFEST_NAME, readManifest, renderManifest, STATE_OVERHEAD, stateLimit } from '../../../src/capsule/manifest.js';
import { InputError, KvmtestError } from '../../../src/errors.js';
import { capsuleManifestOf } from '../fixtures/capsule.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

// biome-ignore lint/suspicious/noExplicitAny: a manifest is broken field by field, as a hand-edited file would be
type Loose = any;

/** What checkManifest threw for the fixture manifest after `mutate`. */
function refusal(mutate: (m: Loose) => void): KvmtestError {
  const m = capsuleManifestOf() as Loose;
  mutate(m);
  try {
    checkManifest(m, '/caps/one');
  } catch (error) {
    return error as KvmtestError;
  }
  throw new Error(`accepted without complaint: ${JSON.stringify(m)}`);
}

describe('checkManifest', () => {
  it('accepts a manifest as kvmtest writes it, and returns it', () => {
    const m = capsuleManifestOf();
    expect(checkManifest(m)).toBe(m);
    // and after a trip through its own bytes
    expect(checkManifest(JSON.parse(renderManifest(m)))).toEqual(m);
  });

  it('accepts the optional shapes: UEFI with its vars, kernel boot, no network, a RAM backend, a shell-string command, no cell notes', () => {
    const uefi = capsuleManifestOf();
    uefi.machine.boot = { kind: 'firmware', firmware: 'uefi', code: '/usr/share/OVMF/OVMF_CODE.fd', codeSha256: 'a'.repeat(64) };
    uefi.files.uefiVars = { bytes: 540672, sha256: 'b'.repeat(64) };
    expect(() => checkManifest(uefi)).not.toThrow();
    const other = capsuleManifestOf() as Loose;
    other.machine.boot = { kind: 'kernel' };
    other.machine.network = false;
    other.machine.ramBackend = true;
    other.machine.qemuArgs = ['-smbios', 'type=1'];
    other.command = 'npm test';
    for (const field of ['cell', 'env', 'cwd', 'durations']) delete other[field];
    delete other.files.console;
    expect(() => checkManifest(other)).not.toThrow();
  });

  it('stateBytes may reach the guest memory plus STATE_OVERHEAD, not one byte more', () => {
    const limit = stateLimit(1024 * 2 ** 20);
    expect(limit).toBe(1024 * 2 ** 20 + STATE_OVERHEAD);
    const m = capsuleManifestOf();
    m.stateBytes = limit;
    expect(() => checkManifest(m)).not.toThrow();
    m.stateBytes = limit + 1;
    expect(() => checkManifest(m)).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('"stateBytes"') }));
  });

  it.each<[string, (m: Loose) => void]>([
    ['kind', (m) => (m.kind = 'kvmtest-snapshot')],
    ['format', (m) => (m.format = 2)],
    ['format', (m) => (m.format = '1')],
    ['createdAt', (m) => (m.createdAt = 'yesterday')],
    ['hostname', (m) => (m.hostname = 'evil/host')],
    ['hostname', (m) => (m.hostname = '-leading-dash')],
    ['qemu', (m) => (m.qemu = '7.2.22')],
    ['qemu.version', (m) => (m.qemu.version = '7.2.22 (Debian 1:7.2+dfsg-7)')],
    ['qemu.version', (m) => (m.qemu.version = 'unknown')],
    ['machine', (m) => (m.machine = null)],
    ['machine.arch', (m) => (m.machine.arch = '')],
    ['machine.type', (m) => (m.machine.type = 'pc-q35-7.2,memory-backend=x')],
    ['machine.cpu', (m) => (m.machine.cpu = 'Nehalem,+vmx')],
    ['machine.accel', (m) => (m.machine.accel = 'kvm -S')],
    ['machine.cpus', (m) => (m.machine.cpus = 0)],
    ['machine.cpus', (m) => (m.machine.cpus = 1.5)],
    ['machine.memoryMiB', (m) => (m.machine.memoryMiB = 8)],
    ['machine.memoryMiB', (m) => (m.machine.memoryMiB = '1024')],
    ['machine.boot', (m) => (m.machine.boot = { kind: 'firmware', firmware: 'coreboot' })],
    [
      'machine.boot.code',
      (m) => {
        m.machine.boot = { kind: 'firmware', firmware: 'uefi', codeSha256: 'a'.repeat(64) };
        m.files.uefiVars = { bytes: 1, sha256: 'b'.repeat(64) };
      },
    ],
    [
      'machine.boot.code',
      (m) => {
        m.machine.boot = { kind: 'firmware', firmware: 'uefi', code: 'OVMF_CODE.fd', codeSha256: 'a'.repeat(64) };
        m.files.uefiVars = { bytes: 1, sha256: 'b'.repeat(64) };
      },
    ],
    [
      'machine.boot.codeSha256',
      (m) => {
        m.machine.boot = { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd' };
        m.files.uefiVars = { bytes: 1, sha256: 'b'.repeat(64) };
      },
    ],
    ['machine.network', (m) => (m.machine.network = true)],
    ['machine.network.guestPorts', (m) => (m.machine.network.guestPorts = [22, 65536])],
    ['machine.network.guestPorts', (m) => (m.machine.network.guestPorts = [0])],
    ['machine.network.guestPorts', (m) => (m.machine.network.guestPorts = '22')],
    ['machine.network.outbound', (m) => (m.machine.network.outbound = 'yes')],
    ['machine.ramBackend', (m) => (m.machine.ramBackend = 'yes')],
    ['machine.ramBackend', (m) => (m.machine.ramBackend = 1)],
    ['machine.qemuArgs', (m) => (m.machine.qemuArgs = '-smp 4')],
    ['base.name', (m) => (m.base.name = '')],
    ['base.sha256', (m) => (m.base.sha256 = 'not-hex')],
    ['base.sha256', (m) => (m.base.sha256 = 'A'.repeat(64))],
    ['base.format', (m) => (m.base.format = 'vmdk')],
    ['base.virtualSize', (m) => (m.base.virtualSize = -1)],
    ['stateBytes', (m) => (m.stateBytes = 1024 * 2 ** 20 + STATE_OVERHEAD + 1)],
    ['stateBytes', (m) => (m.stateBytes = 0)],
    ['files', (m) => (m.files = [])],
    ['files.../x', (m) => (m.files['../x'] = { bytes: 1, sha256: 'c'.repeat(64) })],
    ['files.manifest', (m) => (m.files.manifest = { bytes: 1, sha256: 'c'.repeat(64) })],
    ['files.state', (m) => delete m.files.state],
    ['files.disk', (m) => (m.files.disk.bytes = -1)],
    ['files.seed', (m) => (m.files.seed.sha256 = 'short')],
    ['files.uefiVars', (m) => (m.files.uefiVars = { bytes: 1, sha256: 'b'.repeat(64) })],
    [
      'files.uefiVars',
      (m) => {
        m.machine.boot = { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd', codeSha256: 'a'.repeat(64) };
      },
    ],
    ['command', (m) => (m.command = ['npm', 1])],
    ['env', (m) => (m.env = { A: 1 })],
    ['cwd', (m) => (m.cwd = 3)],
    ['durations', (m) => (m.durations = { run: 'long' })],
    ['cell', (m) => (m.cell = { id: 7, status: 'failed' })],
  ])('%s: refused with CAPSULE_DAMAGED naming the field', (field, mutate) => {
    const error = refusal(mutate);
    expect(error).toBeInstanceOf(KvmtestError);
    expect(error).toBeInstanceOf(InputError);
    expect(error.code).toBe('CAPSULE_DAMAGED');
    expect(error.message).toContain('/caps/one');
    expect(error.message).toContain(`${MANIFEST_NAME}: "${field}" should be`);
  });

  it('what is not an object at all is damaged', () => {
    for (const bad of [null, 'manifest', [capsuleManifestOf()], 42]) {
      expect(() => checkManifest(bad)).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('"(top level)"') }));
    }
  });

  it("a files role that is a prototype key is not one of the capsule's", () => {
    const m = JSON.parse(renderManifest(capsuleManifestOf()).replace('"files": {', `"files": { "__proto__": { "bytes": 1, "sha256": "${'c'.repeat(64)}" },`));
    expect(Object.keys(m.files)).toContain('__proto__');
    expect(() => checkManifest(m)).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('"files.__proto__"') }));
  });

  it('the names of the files are fixed, never from the manifest', () => {
    expect(CAPSULE_FILES).toEqual({ state: 'state.gz', disk: 'disk.qcow2', seed: 'seed.iso', uefiVars: 'uefi-vars.fd', console: 'console.log' });
  });
});

describe('readManifest', () => {
  const roots = useTempRoots();
  const valid = () => renderManifest(capsuleManifestOf());

  it('reads and checks a valid manifest', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, MANIFEST_NAME), valid());
    await expect(readManifest(dir)).resolves.toEqual(capsuleManifestOf());
  });

  it('no manifest.json: CAPSULE_DAMAGED saying so', async () => {
    const dir = roots.makeRoot();
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('no manifest.json') });
    await expect(readManifest(join(dir, 'missing'))).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('no manifest.json') });
  });

  it('a manifest.json that links to a valid manifest elsewhere is not followed', async () => {
    const dir = roots.makeRoot();
    const elsewhere = join(roots.makeRoot(), 'real.json');
    writeFileSync(elsewhere, valid());
    symlinkSync(elsewhere, join(dir, MANIFEST_NAME));
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('symbolic link') });
  });

  it('a manifest.json that is a FIFO is refused at once, not waited on', async () => {
    const dir = roots.makeRoot();
    execFileSync('mkfifo', [join(dir, MANIFEST_NAME)]);
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('not a regular file') });
  });

  it('a manifest.json that is a directory is damaged', async () => {
    const dir = roots.makeRoot();
    mkdirSync(join(dir, MANIFEST_NAME));
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('not a regular file') });
  });

  it('a manifest over MANIFEST_MAX_BYTES is refused by its size, even when it is JSON', async () => {
    const dir = roots.makeRoot();
    const m = capsuleManifestOf();
    m.env = { PAD: 'x'.repeat(MANIFEST_MAX_BYTES) };
    writeFileSync(join(dir, MANIFEST_NAME), renderManifest(m));
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining(`at most ${MANIFEST_MAX_BYTES}`) });
  });

  it('a manifest of exactly MANIFEST_MAX_BYTES is read', async () => {
    const dir = roots.makeRoot();
    const m = capsuleManifestOf();
    m.env = { PAD: '' };
    const short = renderManifest(m).length;
    m.env = { PAD: 'x'.repeat(MANIFEST_MAX_BYTES - short) };
    writeFileSync(join(dir, MANIFEST_NAME), renderManifest(m));
    expect(readFileSync(join(dir, MANIFEST_NAME)).length).toBe(MANIFEST_MAX_BYTES);
    await expect(readManifest(dir)).resolves.toEqual(m);
  });

  it('not JSON: CAPSULE_DAMAGED', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, MANIFEST_NAME), valid().slice(0, 100));
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('not JSON') });
  });

  it('JSON that fails a field check: CAPSULE_DAMAGED naming the field and the directory', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, MANIFEST_NAME), valid().replace('"pc-q35-7.2"', '"pc-q35-7.2,accel=kvm"'));
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringMatching(new RegExp(`^the capsule ${dir} .*"machine.type"`)) });
  });
});

describe('checkManifest: the mounted disks a capsule carries', () => {
  const withAttached = (attached: unknown) => ({ ...capsuleManifestOf(), attached });
  const disk = (target: unknown) => ({ target, bytes: 10, sha256: 'c'.repeat(64) });

  it('accepts up to 16 disks on distinct targets 1–255', () => {
    expect(() => checkManifest(withAttached([disk(1), disk(255)]))).not.toThrow();
    expect(() => checkManifest(withAttached(Array.from({ length: 16 }, (_, i) => disk(i + 1))))).not.toThrow();
  });

  it.each([
    ['not an array', { target: 1 }],
    ['17 disks', Array.from({ length: 17 }, (_, i) => disk(i + 1))],
    ['target 0', [disk(0)]],
    ['target 256', [disk(256)]],
    ['a target given twice', [disk(2), disk(2)]],
    ['a target that is a path', [disk('../x')]],
    ['no sha256', [{ target: 1, bytes: 1 }]],
  ])('refuses %s as CAPSULE_DAMAGED naming "attached"', (_what, attached) => {
    expect(() => checkManifest(withAttached(attached))).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('"attached') }));
  });
});
