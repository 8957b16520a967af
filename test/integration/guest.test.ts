/**
 * One Debian 12 guest, booted the way stock cloud images boot (SeaBIOS → GRUB → kernel, cloud-init
 * from a NoCloud seed installs the agent), and many cases run against it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { guestDirs, isAlive, sha256File } from './helpers.js';

const image = inject('debian12');
let vm: Guest;
let baseDigest: string;
let work: string;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-it-'));
  baseDigest = await sha256File(image.disk);
  vm = await boot({
    image: image.disk,
    memory: '1G',
    cpus: 2,
    cloudConfig: { write_files: [{ path: '/etc/kvmtest-user-file', content: 'from the user\n' }], runcmd: [['sh', '-c', 'echo ran > /run/user-runcmd']] },
  });
});

afterAll(async () => {
  await vm?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('a Debian 12 guest booted by firmware', () => {
  it('says hello with its OS, kernel and architecture', () => {
    expect(vm.info.agent.os).toMatchObject({ id: 'debian', versionId: '12' });
    expect(vm.info.agent.kernel).toMatch(/^6\.1\./);
    expect(vm.info.agent.arch).toBe('x86_64');
    expect(vm.info.accel).toBe('tcg');
    console.log(`boot to agent hello: ${(vm.info.bootMs / 1000).toFixed(1)} s (${vm.info.accel})`);
  });

  it('runs commands and reports exit codes', async () => {
    expect((await vm.exec(['true'])).exitCode).toBe(0);
    expect((await vm.exec(['sh', '-c', 'exit 42'])).exitCode).toBe(42);
    const r = await vm.exec('uname -s; echo oops >&2');
    expect(r).toMatchObject({ exitCode: 0, stdout: 'Linux\n', stderr: 'oops\n' });
    expect(r.durationMs).toBeGreaterThan(0);
  });

  it('passes env and cwd, feeds stdin', async () => {
    const r = await vm.exec(['sh', '-c', 'echo "$GREETING from $(pwd)"; cat'], { env: { GREETING: 'hi' }, cwd: '/tmp', input: 'in\n' });
    expect(r.stdout).toBe('hi from /tmp\nin\n');
  });

  it('reports signals: kill by signal and timeout', async () => {
    const p = vm.spawn('sleep', ['600']);
    await p.pid;
    p.kill('SIGKILL');
    expect(await p).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    await expect(vm.exec(['sleep', '600'], { timeout: '1s' })).rejects.toMatchObject({ code: 'EXEC_TIMEOUT' });
  });

  it('a command missing in the guest is COMMAND_NOT_FOUND', async () => {
    await expect(vm.exec(['definitely-not-installed'])).rejects.toMatchObject({ code: 'COMMAND_NOT_FOUND' });
  });

  it('runs concurrent commands, each with its own output', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => vm.exec(['sh', '-c', `sleep 0.$((${i} % 3)); echo ${i}; exit ${i}`])));
    expect(results.map((r) => [r.stdout, r.exitCode])).toEqual(Array.from({ length: 12 }, (_, i) => [`${i}\n`, i]));
  });

  it('streams 10 MB of binary stdout byte-exact', async () => {
    const r = await vm.exec(['sh', '-c', 'head -c 10485760 /dev/urandom > /tmp/blob; sha256sum /tmp/blob >&2; cat /tmp/blob']);
    expect(r.stdoutBytes.length).toBe(10 * 1024 * 1024);
    expect(r.stderr.split(' ')[0]).toBe(sha(r.stdoutBytes));
  });

  it('streams output live, line by line', async () => {
    const seen: { line: string; at: number }[] = [];
    for await (const line of vm.spawn('sh', ['-c', 'for i in 1 2 3; do echo line $i; sleep 1; done']).lines()) seen.push({ line, at: Date.now() });
    expect(seen.map((s) => s.line)).toEqual(['line 1', 'line 2', 'line 3']);
    // live, not at exit: the first line came well before the last
    expect(seen[2]!.at - seen[0]!.at).toBeGreaterThan(1500);
  });

  it('pushes a directory tree and pulls it back byte-exact with modes', async () => {
    const src = join(work, 'project');
    mkdirSync(join(src, 'lib/deep/er'), { recursive: true });
    const blob = randomBytes(5 * 1024 * 1024);
    writeFileSync(join(src, 'lib/deep/er/blob.bin'), blob);
    writeFileSync(join(src, 'test.sh'), '#!/bin/sh\necho "tests pass"\n');
    chmodSync(join(src, 'test.sh'), 0o755);
    await vm.push(src, '/work');
    expect((await vm.exec(['/work/test.sh'])).stdout).toBe('tests pass\n');
    expect((await vm.exec(['sha256sum', '/work/lib/deep/er/blob.bin'])).stdout.split(' ')[0]).toBe(sha(blob));
    await vm.pull('/work', join(work, 'back'));
    expect(sha(readFileSync(join(work, 'back/lib/deep/er/blob.bin')))).toBe(sha(blob));
    expect(statSync(join(work, 'back/test.sh')).mode & 0o777).toBe(0o755);
    await vm.exec(['sh', '-c', 'echo "<testsuite/>" > /work/junit.xml']);
    await vm.pull('/work/junit.xml', join(work, 'out/junit.xml'));
    expect(readFileSync(join(work, 'out/junit.xml'), 'utf8')).toBe('<testsuite/>\n');
  });

  it("merges the user's cloud-config with kvmtest's", async () => {
    await vm.exec(['cloud-init', 'status', '--wait'], { timeout: '5m' });
    expect((await vm.exec(['cat', '/etc/kvmtest-user-file'])).stdout).toBe('from the user\n');
    expect((await vm.exec(['cat', '/run/user-runcmd'])).stdout).toBe('ran\n');
  });

  it('the agent survives the host disconnecting and reconnecting; what ran under the old link is killed', async () => {
    const orphan = vm.spawn('sh', ['-c', 'echo $$ > /tmp/orphan.pid; exec sleep 600']);
    await orphan.pid;
    await vm.reconnect();
    await expect(orphan).rejects.toMatchObject({ code: 'AGENT_DISCONNECTED' });
    const alive = await vm.exec(['sh', '-c', 'kill -0 $(cat /tmp/orphan.pid) 2>/dev/null && echo alive || echo gone']);
    expect(alive.stdout).toBe('gone\n');
    await vm.reconnect();
    expect((await vm.exec(['echo', 'still here'])).stdout).toBe('still here\n');
    // the agent did not spin while disconnected
    const cpu = await vm.exec(['sh', '-c', 'ps -o time= -p $(pgrep -f /run/kvmtest/agent.py | head -1)']);
    expect(cpu.stdout.trim()).toMatch(/^00:00:0\d$/);
  });

  it('writes to its disk without touching the base image; dispose leaves no process and no files', async () => {
    await vm.exec(['sh', '-c', 'dd if=/dev/urandom of=/var/tmp/fill bs=1M count=64 status=none && sync']);
    const { pid } = vm;
    const dir = vm.info.dir;
    expect(isAlive(pid)).toBe(true);
    await vm.dispose();
    await vm.dispose(); // safe twice
    expect(vm.state).toBe('stopped');
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(guestDirs()).toEqual([]);
    expect(await sha256File(image.disk)).toBe(baseDigest);
    await expect(vm.exec(['true'])).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
  });
});
