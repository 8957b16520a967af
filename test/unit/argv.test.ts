import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sandboxLine } from '../../src/cli/doctor.js';
import { copyUefiVars, machineSpec } from '../../src/machine/plan.js';
import type { Prepared } from '../../src/guest/prepare.js';
import { probeSandbox } from '../../src/host/sandbox.js';
import { buildQemuArgs, type BootMethod, type MachineSpec } from '../../src/qemu/argv.js';

const spec = (over: Partial<MachineSpec> = {}): MachineSpec => ({
  name: 'kvmtest-1',
  accel: 'tcg',
  cpus: 2,
  memoryMiB: 1024,
  disk: '/tmp/g/disk.qcow2',
  backing: [{ path: '/cache/base.qcow2', format: 'qcow2' }],
  seed: '/tmp/g/seed.iso',
  boot: { kind: 'firmware', firmware: 'bios' },
  qmpSocket: '/tmp/g/qmp.sock',
  agentSocket: '/tmp/g/agent.sock',
  network: false,
  ...over,
});

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

const blockdevs = (args: string[]) => after(args, '-blockdev').map((json) => JSON.parse(json) as Record<string, unknown>);

describe('QEMU argv', () => {
  it('names the overlay\'s backing chain explicitly, read-only, ended by backing: null (never what a header says)', () => {
    const [disk] = blockdevs(buildQemuArgs(spec()));
    expect(disk).toEqual({
      driver: 'qcow2', 'node-name': 'disk0', discard: 'unmap', file: { driver: 'file', filename: '/tmp/g/disk.qcow2' },
      backing: { driver: 'qcow2', 'read-only': true, file: { driver: 'file', filename: '/cache/base.qcow2', 'read-only': true }, backing: null },
    });
    // a restore: overlay → the snapshot's disk → a raw base (raw has no backing option)
    const [restored] = blockdevs(buildQemuArgs(spec({ backing: [{ path: '/snap/disk.qcow2', format: 'qcow2' }, { path: '/base.img', format: 'raw' }] })));
    expect(restored!.backing).toEqual({
      driver: 'qcow2', 'read-only': true, file: { driver: 'file', filename: '/snap/disk.qcow2', 'read-only': true },
      backing: { driver: 'raw', 'read-only': true, file: { driver: 'file', filename: '/base.img', 'read-only': true } },
    });
  });

  it('TCG: multi-threaded TCG and the max CPU model', () => {
    const args = buildQemuArgs(spec());
    expect(after(args, '-accel')).toEqual(['tcg,thread=multi']);
    expect(after(args, '-cpu')).toEqual(['max']);
    expect(args).not.toContain('-enable-kvm');
  });

  it('KVM: the host CPU model', () => {
    const args = buildQemuArgs(spec({ accel: 'kvm' }));
    expect(after(args, '-accel')).toEqual(['kvm']);
    expect(after(args, '-cpu')).toEqual(['host']);
  });

  it('sizes, no defaults, no display, serial console on stdout, QMP socket', () => {
    const args = buildQemuArgs(spec({ cpus: 4, memoryMiB: 2048 }));
    expect(after(args, '-smp')).toEqual(['4']);
    expect(after(args, '-m')).toEqual(['2048M']);
    expect(args).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'chardev:console0']));
    expect(after(args, '-chardev')).toContain('socket,id=qmp0,path=/tmp/g/qmp.sock,server=on,wait=off');
    expect(after(args, '-mon')).toEqual(['chardev=qmp0,mode=control']);
  });

  it('the overlay is the writable disk; the seed is read-only', () => {
    const [disk, seed] = after(buildQemuArgs(spec()), '-blockdev').map((b) => JSON.parse(b));
    expect(disk).toMatchObject({ driver: 'qcow2', file: { filename: '/tmp/g/disk.qcow2' } });
    expect(disk['read-only']).toBeUndefined();
    expect(seed).toMatchObject({ driver: 'raw', 'read-only': true, file: { filename: '/tmp/g/seed.iso' } });
  });

  it('the agent port is a virtserialport named org.kvmtest.agent.0 on a unix socket', () => {
    const args = buildQemuArgs(spec());
    expect(after(args, '-chardev')).toContain('socket,id=agent0,path=/tmp/g/agent.sock,server=on,wait=off');
    expect(after(args, '-device')).toContain('virtserialport,bus=vser0.0,chardev=agent0,name=org.kvmtest.agent.0,id=agentport');
  });

  it('no network unless asked; forwards bind to 127.0.0.1', () => {
    expect(after(buildQemuArgs(spec()), '-nic')).toEqual(['none']);
    const nic = after(buildQemuArgs(spec({ network: { forwards: [{ host: 40022, guest: 22 }] } })), '-nic');
    expect(nic).toEqual(['user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:40022-:22']);
  });

  it('an isolated network (outbound: false) is slirp restrict=on: forwards still reach the guest', () => {
    const nic = after(buildQemuArgs(spec({ network: { forwards: [{ host: 40022, guest: 22 }], outbound: false } })), '-nic');
    expect(nic).toEqual(['user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22']);
    expect(after(buildQemuArgs(spec({ network: { forwards: [], outbound: true } })), '-nic')).toEqual(['user,model=virtio-net-pci']);
  });

  it('the seccomp sandbox denies obsolete calls, privilege changes, spawning and resource control, when on', () => {
    expect(after(buildQemuArgs(spec({ sandbox: true })), '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    expect(buildQemuArgs(spec())).not.toContain('-sandbox');
  });

  it('direct kernel boot passes kernel, initrd and append', () => {
    const args = buildQemuArgs(spec({ boot: { kind: 'kernel', kernel: '/k', initrd: '/i', append: 'root=/dev/vda1 console=ttyS0' } }));
    expect(after(args, '-kernel')).toEqual(['/k']);
    expect(after(args, '-initrd')).toEqual(['/i']);
    expect(after(args, '-append')).toEqual(['root=/dev/vda1 console=ttyS0']);
  });

  it('UEFI uses read-only code and writable vars pflash', () => {
    const args = buildQemuArgs(spec({ boot: { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd', vars: '/g/VARS.fd' } }));
    expect(after(args, '-drive')).toEqual(['if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd', 'if=pflash,format=raw,unit=1,file=/g/VARS.fd']);
  });

  it('escapes commas in paths given in option syntax', () => {
    const args = buildQemuArgs(spec({ qmpSocket: '/tmp/a,b/qmp.sock' }));
    expect(after(args, '-chardev')).toContain('socket,id=qmp0,path=/tmp/a,,b/qmp.sock,server=on,wait=off');
  });
});

describe('per-guest machine files', () => {
  const prep = (bootMethod: BootMethod) => ({ bootMethod, choice: { accel: 'tcg' }, opts: { cpus: 1, memoryMiB: 512 }, options: {}, sandbox: true }) as unknown as Prepared;
  const uefi: BootMethod = { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd', vars: '/shared/VARS.fd' };

  it('each UEFI guest writes its own copy of the vars file, in its private dir', async () => {
    const dirs = [mkdtempSync(join(tmpdir(), 'kvmtest-unit-')), mkdtempSync(join(tmpdir(), 'kvmtest-unit-'))];
    const shared = join(dirs[0]!, 'VARS.fd');
    writeFileSync(shared, 'vars', { mode: 0o644 });
    try {
      const specs = dirs.map((dir) => machineSpec(prep({ ...uefi, vars: shared }), 'kvmtest-1', dir, '/d', [], '/s', false));
      expect(specs.map((s) => (s.boot as { vars: string }).vars)).toEqual(dirs.map((dir) => join(dir, 'uefi-vars.fd')));
      for (const dir of dirs) await copyUefiVars(prep({ ...uefi, vars: shared }), dir);
      for (const dir of dirs) expect(statSync(join(dir, 'uefi-vars.fd')).mode & 0o777).toBe(0o600);
      expect(specs[0]!.sandbox).toBe(true);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('BIOS and kernel boots have no vars file to copy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    try {
      await copyUefiVars(prep({ kind: 'firmware', firmware: 'bios' }), dir);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sandbox probe', () => {
  it('a QEMU that refuses -sandbox is reported as unsupported, with its reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    const fake = join(dir, 'qemu-system-fake');
    writeFileSync(fake, '#!/bin/sh\necho "qemu-system-fake: -sandbox support is not enabled in this QEMU binary" >&2\nexit 1\n', { mode: 0o755 });
    try {
      expect(await probeSandbox(fake)).toEqual({ supported: false, reason: 'qemu-system-fake: -sandbox support is not enabled in this QEMU binary' });
      expect(await sandboxLine(fake)).toMatchObject({ ok: true, what: 'QEMU sandbox', detail: expect.stringMatching(/^not available/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
