import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildQemuArgs, INCOMING_STATE_FD, INCOMING_STATE_URI } from '../../../src/qemu/argv.js';
import { valuesAfter } from '../fixtures/argv.js';
import { machineSpecOf } from '../fixtures/machine-spec.js';

const blockdevs = (args: string[]) => valuesAfter(args, '-blockdev').map((json) => JSON.parse(json) as Record<string, unknown>);

describe('QEMU argv', () => {
  it("names the overlay's backing chain explicitly, read-only, ended by backing: null (never what a header says)", () => {
    const [disk] = blockdevs(buildQemuArgs(machineSpecOf()));
    expect(disk).toEqual({
      driver: 'qcow2',
      'node-name': 'disk0',
      discard: 'unmap',
      file: { driver: 'file', filename: '/tmp/g/disk.qcow2' },
      backing: { driver: 'qcow2', 'read-only': true, file: { driver: 'file', filename: '/cache/base.qcow2', 'read-only': true }, backing: null },
    });
    // a restore: overlay → the snapshot's disk → a raw base (raw has no backing option)
    const [restored] = blockdevs(
      buildQemuArgs(
        machineSpecOf({
          backing: [
            { path: '/snap/disk.qcow2', format: 'qcow2' },
            { path: '/base.img', format: 'raw' },
          ],
        }),
      ),
    );
    expect(restored!.backing).toEqual({
      driver: 'qcow2',
      'read-only': true,
      file: { driver: 'file', filename: '/snap/disk.qcow2', 'read-only': true },
      backing: { driver: 'raw', 'read-only': true, file: { driver: 'file', filename: '/base.img', 'read-only': true } },
    });
  });

  it('TCG: multi-threaded TCG and the max CPU model', () => {
    const args = buildQemuArgs(machineSpecOf());
    expect(valuesAfter(args, '-accel')).toEqual(['tcg,thread=multi']);
    expect(valuesAfter(args, '-cpu')).toEqual(['max']);
    expect(args).not.toContain('-enable-kvm');
  });

  it('KVM: the host CPU model', () => {
    const args = buildQemuArgs(machineSpecOf({ accel: 'kvm' }));
    expect(valuesAfter(args, '-accel')).toEqual(['kvm']);
    expect(valuesAfter(args, '-cpu')).toEqual(['host']);
  });

  it('sizes, no defaults, no display, serial console on stdout, QMP socket', () => {
    const args = buildQemuArgs(machineSpecOf({ cpus: 4, memoryMiB: 2048 }));
    expect(valuesAfter(args, '-smp')).toEqual(['4']);
    expect(valuesAfter(args, '-m')).toEqual(['2048M']);
    expect(args).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'chardev:console0']));
    expect(valuesAfter(args, '-chardev')).toContain('socket,id=qmp0,path=/tmp/g/qmp.sock,server=on,wait=off');
    expect(valuesAfter(args, '-mon')).toEqual(['chardev=qmp0,mode=control']);
  });

  it('the overlay is the writable disk; the seed is read-only', () => {
    const [disk, seed] = valuesAfter(buildQemuArgs(machineSpecOf()), '-blockdev').map((b) => JSON.parse(b));
    expect(disk).toMatchObject({ driver: 'qcow2', file: { filename: '/tmp/g/disk.qcow2' } });
    expect(disk['read-only']).toBeUndefined();
    expect(seed).toMatchObject({ driver: 'raw', 'read-only': true, file: { filename: '/tmp/g/seed.iso' } });
  });

  it('the agent port is a virtserialport named org.kvmtest.agent.0 on a unix socket', () => {
    const args = buildQemuArgs(machineSpecOf());
    expect(valuesAfter(args, '-chardev')).toContain('socket,id=agent0,path=/tmp/g/agent.sock,server=on,wait=off');
    expect(valuesAfter(args, '-device')).toContain('virtserialport,bus=vser0.0,chardev=agent0,name=org.kvmtest.agent.0,id=agentport');
  });

  it('no network unless asked; forwards bind to 127.0.0.1', () => {
    expect(valuesAfter(buildQemuArgs(machineSpecOf()), '-nic')).toEqual(['none']);
    const nic = valuesAfter(buildQemuArgs(machineSpecOf({ network: { forwards: [{ host: 40022, guest: 22 }] } })), '-nic');
    expect(nic).toEqual(['user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:40022-:22']);
  });

  it('an isolated network (outbound: false) is slirp restrict=on: forwards still reach the guest', () => {
    const nic = valuesAfter(buildQemuArgs(machineSpecOf({ network: { forwards: [{ host: 40022, guest: 22 }], outbound: false } })), '-nic');
    expect(nic).toEqual(['user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22']);
    expect(valuesAfter(buildQemuArgs(machineSpecOf({ network: { forwards: [], outbound: true } })), '-nic')).toEqual(['user,model=virtio-net-pci']);
  });

  it('the seccomp sandbox denies obsolete calls, privilege changes, spawning and resource control, when on', () => {
    expect(valuesAfter(buildQemuArgs(machineSpecOf({ sandbox: true })), '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    expect(buildQemuArgs(machineSpecOf())).not.toContain('-sandbox');
  });

  it('direct kernel boot passes kernel, initrd and append', () => {
    const args = buildQemuArgs(machineSpecOf({ boot: { kind: 'kernel', kernel: '/k', initrd: '/i', append: 'root=/dev/vda1 console=ttyS0' } }));
    expect(valuesAfter(args, '-kernel')).toEqual(['/k']);
    expect(valuesAfter(args, '-initrd')).toEqual(['/i']);
    expect(valuesAfter(args, '-append')).toEqual(['root=/dev/vda1 console=ttyS0']);
  });

  it('UEFI uses read-only code and writable vars pflash', () => {
    const args = buildQemuArgs(machineSpecOf({ boot: { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd', vars: '/g/VARS.fd' } }));
    expect(valuesAfter(args, '-drive')).toEqual(['if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd', 'if=pflash,format=raw,unit=1,file=/g/VARS.fd']);
  });

  it('escapes commas in paths given in option syntax', () => {
    const args = buildQemuArgs(machineSpecOf({ qmpSocket: '/tmp/a,b/qmp.sock' }));
    expect(valuesAfter(args, '-chardev')).toContain('socket,id=qmp0,path=/tmp/a,,b/qmp.sock,server=on,wait=off');
  });
});

describe('restore argv', () => {
  it('waits for the saved state (-incoming defer): QMP loads it from an inherited fd, no shell, no exec: (the sandbox denies spawn)', () => {
    const args = buildQemuArgs({
      name: 'n',
      accel: 'tcg',
      cpus: 1,
      memoryMiB: 512,
      disk: '/d',
      backing: [{ path: '/b', format: 'qcow2' }],
      seed: '/s',
      boot: { kind: 'firmware', firmware: 'bios' },
      qmpSocket: '/q',
      agentSocket: '/a',
      network: false,
      incomingState: "/cache/it's/state.bin",
    });
    expect(args.slice(-2)).toEqual(['-incoming', 'defer']);
    expect(INCOMING_STATE_URI).toBe(`fd:${INCOMING_STATE_FD}`);
    expect(args.join(' ')).not.toContain('exec:');
    expect(args).toContain('vmgenid,guid=auto');
  });
});

describe('templated RAM', () => {
  it("a template keeps its RAM in a shared file (share=on), named as the machine's memory backend, of the -m size", () => {
    const args = buildQemuArgs(machineSpecOf({ memoryMiB: 2048, memoryFile: { path: '/cache/snap,1/ram.bin', shared: true } }));
    expect(valuesAfter(args, '-object')).toEqual(['memory-backend-file,id=ram0,size=2048M,mem-path=/cache/snap,,1/ram.bin,share=on']);
    expect(valuesAfter(args, '-machine')).toEqual(['q35,graphics=off,memory-backend=ram0']);
    expect(valuesAfter(args, '-m')).toEqual(['2048M']);
    expect(args).not.toContain('-incoming');
  });

  it('a clone maps the same file private (share=off, copy-on-write) and waits for its device state; never readonly=on or memfd', () => {
    const args = buildQemuArgs(machineSpecOf({ memoryFile: { path: '/cache/snap/ram.bin', shared: false }, incomingState: '/cache/snap/state.bin' }));
    expect(valuesAfter(args, '-object')).toEqual(['memory-backend-file,id=ram0,size=1024M,mem-path=/cache/snap/ram.bin,share=off']);
    expect(valuesAfter(args, '-machine')).toEqual(['q35,graphics=off,memory-backend=ram0']);
    expect(valuesAfter(args, '-incoming')).toEqual(['defer']);
    expect(args.join(' ')).not.toContain('memory-backend-memfd');
  });

  it('a cold boot has anonymous RAM: no memory backend object', () => {
    const args = buildQemuArgs(machineSpecOf());
    expect(args).not.toContain('-object');
    expect(valuesAfter(args, '-machine')).toEqual(['q35,graphics=off']);
  });

  it('aarch64: the backend joins the virt machine options', () => {
    const args = buildQemuArgs(machineSpecOf({ arch: 'aarch64', memoryFile: { path: '/r', shared: true } }));
    expect(valuesAfter(args, '-machine')).toEqual(['virt,gic-version=max,graphics=off,memory-backend=ram0']);
  });
});

describe('capsule argv: a named CPU model, a versioned machine type, a named RAM backend', () => {
  const golden = () => JSON.parse(readFileSync(join(import.meta.dirname, 'argv-x86_64.golden.json'), 'utf8')) as string[][];

  it('a named CPU model runs with enforce, under TCG and under KVM, in place of max or host', () => {
    const tcg = buildQemuArgs(machineSpecOf({ cpuModel: 'Nehalem' }));
    expect(valuesAfter(tcg, '-cpu')).toEqual(['Nehalem,enforce']);
    expect(valuesAfter(tcg, '-accel')).toEqual(['tcg,thread=multi']);
    const kvm = buildQemuArgs(machineSpecOf({ accel: 'kvm', cpuModel: 'Skylake-Client-v4' }));
    expect(valuesAfter(kvm, '-cpu')).toEqual(['Skylake-Client-v4,enforce']);
    expect(valuesAfter(kvm, '-accel')).toEqual(['kvm']);
    // the rest of the argv is the same as without it
    expect(tcg.filter((a) => a !== 'Nehalem,enforce')).toEqual(buildQemuArgs(machineSpecOf()).filter((a) => a !== 'max'));
  });

  it('without the new fields (or with them empty) the x86_64 argv is byte for byte the golden one', () => {
    const [tcg, kvm] = golden();
    expect(buildQemuArgs(machineSpecOf({ arch: 'x86_64' }))).toEqual(tcg);
    expect(buildQemuArgs(machineSpecOf({ arch: 'x86_64', cpuModel: undefined, machineType: undefined, ramBackend: undefined }))).toEqual(tcg);
    expect(buildQemuArgs(machineSpecOf({ arch: 'x86_64', cpuModel: '', machineType: '', ramBackend: false }))).toEqual(tcg);
    const kvmSpec = machineSpecOf({ arch: 'x86_64', accel: 'kvm', sandbox: true, network: { forwards: [{ host: 1, guest: 2 }], outbound: false } });
    expect(buildQemuArgs({ ...kvmSpec, ramBackend: false })).toEqual(kvm);
  });

  it("x86_64: a versioned machine type replaces the q35 alias, the machine's options kept", () => {
    expect(valuesAfter(buildQemuArgs(machineSpecOf({ machineType: 'pc-q35-7.2' })), '-machine')).toEqual(['pc-q35-7.2,graphics=off']);
    expect(valuesAfter(buildQemuArgs(machineSpecOf({ machineType: 'pc-q35-7.1', memoryFile: { path: '/r', shared: false } })), '-machine')).toEqual(['pc-q35-7.1,graphics=off,memory-backend=ram0']);
  });

  it("aarch64: a versioned machine type replaces virt and keeps ',gic-version=max'", () => {
    const args = buildQemuArgs(machineSpecOf({ arch: 'aarch64', machineType: 'virt-7.2' }));
    expect(valuesAfter(args, '-machine')).toEqual(['virt-7.2,gic-version=max,graphics=off']);
    expect(valuesAfter(buildQemuArgs(machineSpecOf({ arch: 'aarch64', machineType: 'virt-7.2', ramBackend: true })), '-machine')).toEqual([
      'virt-7.2,gic-version=max,graphics=off,memory-backend=ram0',
    ]);
  });

  it('ramBackend: anonymous RAM of the -m size named ram0, given to the machine', () => {
    const args = buildQemuArgs(machineSpecOf({ memoryMiB: 2048, ramBackend: true }));
    expect(valuesAfter(args, '-object')).toEqual(['memory-backend-ram,id=ram0,size=2048M']);
    expect(valuesAfter(args, '-machine')).toEqual(['q35,graphics=off,memory-backend=ram0']);
    expect(valuesAfter(args, '-m')).toEqual(['2048M']);
    expect(args.join(' ')).not.toContain('memory-backend-file');
  });

  it('a RAM file wins over ramBackend: one backend, the file', () => {
    const args = buildQemuArgs(machineSpecOf({ ramBackend: true, memoryFile: { path: '/cache/ram.bin', shared: false } }));
    expect(valuesAfter(args, '-object')).toEqual(['memory-backend-file,id=ram0,size=1024M,mem-path=/cache/ram.bin,share=off']);
    expect(valuesAfter(args, '-machine')).toEqual(['q35,graphics=off,memory-backend=ram0']);
  });

  it("a capsule's restore: its machine type, CPU model and RAM backend, waiting for the state", () => {
    const args = buildQemuArgs(machineSpecOf({ machineType: 'pc-q35-7.2', cpuModel: 'Nehalem', ramBackend: true, incomingState: '/tmp/r/state.bin' }));
    expect(valuesAfter(args, '-machine')).toEqual(['pc-q35-7.2,graphics=off,memory-backend=ram0']);
    expect(valuesAfter(args, '-cpu')).toEqual(['Nehalem,enforce']);
    expect(valuesAfter(args, '-object')).toEqual(['memory-backend-ram,id=ram0,size=1024M']);
    expect(args.slice(-2)).toEqual(['-incoming', 'defer']);
  });
});

describe("disks on the attach controller from the start (a restored capsule's mounted views)", () => {
  it('each is a read-only blockdev (a qcow2 with backing: null) and a scsi-hd on its target', () => {
    const args = buildQemuArgs(machineSpecOf({ attached: [{ target: 3, path: '/c/attach-3.qcow2', format: 'qcow2' }] }));
    const at = args.indexOf('virtio-scsi-pci,id=attach0');
    expect(args.slice(at + 1, at + 5)).toEqual([
      '-blockdev',
      JSON.stringify({ driver: 'qcow2', 'node-name': 'attach-3', 'read-only': true, file: { driver: 'file', filename: '/c/attach-3.qcow2', 'read-only': true }, backing: null }),
      '-device',
      'scsi-hd,id=attach-dev-3,bus=attach0.0,scsi-id=3,lun=0,drive=attach-3',
    ]);
    expect(buildQemuArgs(machineSpecOf({ attached: [] }))).toEqual(buildQemuArgs(machineSpecOf()));
  });
});
