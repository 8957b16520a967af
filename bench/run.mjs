#!/usr/bin/env node
// kvmtest benchmark: `npm run bench` (builds first). One run prints a table and writes
// bench/results/latest.json with the host, the accelerator, every sample, medians and ratios.
//
//   1. boot() call → first exec(['true']) result: cold boot vs restored from the (templated) snapshot
//   2. host memory of the QEMU process after `true`, as PSS from /proc/<pid>/smaps_rollup (clones map
//      the template's RAM file copy-on-write, so RSS counts shared pages once per guest; PSS divides
//      them): cold vs restored guest, and 8 restored guests at once (sum); RSS kept alongside
//   3. exec round trip of `true`: agent vs ssh (fresh connection; and ControlMaster multiplexing)
//   4. pushes, checked in the guest: a 1 GiB random file (sha256) by stream, by disk and by scp; this
//      repository's node_modules (tree digest: names, modes, contents, links) by stream, by disk and by
//      tar | ssh; `node: 'host'` in a matrix cell (its node phase) vs a streamed copy of node and npm
//   5. checkpoints: checkpoint() of a running guest (time and pause); a clone of it to first exec;
//      8 clones at once (PSS sum vs one cold guest); a fresh guest handed out by a GuestPool while the
//      previous "test" ran vs boot() on demand; fresh clones per minute (clone, true, dispose) with and
//      without the pool; the same hand-out from a pool owned by another process (SharedGuestPool)
//   6. failure capsules: saveCapsule() of a restored guest that wrote a file and left a process
//      running (time, size on disk vs the guest's RAM); reproCapsule() → first exec (restore) vs
//      reproCapsule({ cold: true }) → first exec (the alternative: the same disk booted afresh)
//
// env: BENCH_BOOTS (5), BENCH_CLONES (8), BENCH_EXECS (200), BENCH_SSH (200; 50 when a fresh ssh
// connection takes more than 300 ms under TCG), BENCH_PUSH_MIB (1024), BENCH_CHECKPOINTS (3),
// BENCH_HANDOUTS (10), BENCH_CHURN_S (60), BENCH_CAPSULES (3).
import { execFile as execFileCb, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { boot, GuestPool, reproCapsule, runMatrix, SharedGuestPool } from '../dist/index.js';

const execFile = promisify(execFileCb);
const here = dirname(fileURLToPath(import.meta.url));
const BOOTS = Number(process.env.BENCH_BOOTS ?? 5);
const CLONES = Number(process.env.BENCH_CLONES ?? 8);
const EXECS = Number(process.env.BENCH_EXECS ?? 200);
const SSH_WANTED = Number(process.env.BENCH_SSH ?? 200);
const PUSH_MIB = Number(process.env.BENCH_PUSH_MIB ?? 1024);
const CHECKPOINTS = Number(process.env.BENCH_CHECKPOINTS ?? 3);
const HANDOUTS = Number(process.env.BENCH_HANDOUTS ?? 10);
const CHURN_S = Number(process.env.BENCH_CHURN_S ?? 60);
const CAPSULES = Number(process.env.BENCH_CAPSULES ?? 3);
const BASE = { image: 'debian-12', boot: 'kernel', cpus: 2, memory: '1G' };

const t0 = performance.now();
const log = (msg) => process.stderr.write(`[bench +${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);
const median = (xs) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 2) => (x == null ? null : Number(x.toFixed(d)));
/** PSS (the headline: shared pages divided among the processes that map them) and RSS, in MiB. */
const memMiB = async (pid) => {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name) => {
    const kb = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(rollup)?.[1];
    return kb == null ? null : Number(kb) / 1024;
  };
  const pss = field('Pss');
  if (pss == null) throw new Error(`no Pss line in /proc/${pid}/smaps_rollup`);
  return { pss, rss: field('Rss'), pssAnon: field('Pss_Anon'), pssFile: field('Pss_File') };
};
const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
const must = (result, what) => {
  if (result.exitCode !== 0) throw new Error(`${what} failed (exit ${result.exitCode}): ${result.stderr ?? ''}`);
  return result;
};

const results = {
  date: new Date().toISOString(),
  host: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    kernel: os.release(),
    node: process.version,
  },
  accel: null,
  qemu: null,
  guest: BASE,
  boot: {},
  memory: {},
  exec: {},
  push: {},
  checkpoint: {},
  capsule: {},
  notes: [],
};

const live = new Set();
async function startGuest(options) {
  const vm = await boot(options);
  live.add(vm);
  return vm;
}
async function stopGuest(vm) {
  live.delete(vm);
  await vm.dispose();
}

/** boot() call → first exec(['true']) result; PSS/RSS read after that true, the guest alone. */
async function timedBoot(options) {
  const start = performance.now();
  const vm = await startGuest(options);
  try {
    must(await vm.exec(['true']), 'true');
    const ms = performance.now() - start;
    const mem = await memMiB(vm.pid);
    results.accel ??= vm.info.accel;
    return { ms, mem, snapshot: vm.info.snapshot ?? null, bootMs: vm.info.bootMs };
  } finally {
    await stopGuest(vm);
  }
}

async function bootSection() {
  log('warm-up: first snapshot boot (makes the snapshot with one cold boot)');
  const warm = await timedBoot({ ...BASE, snapshot: true });
  results.boot.warmupMs = round(warm.ms, 0);
  if (!warm.snapshot) results.notes.push('warm-up boot did not report a snapshot key');
  log(`  warm-up done in ${(warm.ms / 1000).toFixed(1)} s`);

  const restored = [];
  for (let i = 0; i < BOOTS; i++) {
    const r = await timedBoot({ ...BASE, snapshot: true });
    if (!r.snapshot) throw new Error('snapshot boot fell back to a cold boot; the comparison would be meaningless');
    restored.push(r);
    log(`  restored ${i + 1}/${BOOTS}: ${r.ms.toFixed(0)} ms, PSS ${r.mem.pss.toFixed(0)} MiB, RSS ${r.mem.rss.toFixed(0)} MiB`);
  }
  const cold = [];
  for (let i = 0; i < BOOTS; i++) {
    const r = await timedBoot(BASE);
    cold.push(r);
    log(`  cold ${i + 1}/${BOOTS}: ${(r.ms / 1000).toFixed(1)} s, PSS ${r.mem.pss.toFixed(0)} MiB, RSS ${r.mem.rss.toFixed(0)} MiB`);
  }
  const b = results.boot;
  b.coldMs = cold.map((r) => round(r.ms, 0));
  b.restoredMs = restored.map((r) => round(r.ms, 0));
  b.coldMedianMs = round(median(b.coldMs), 0);
  b.restoredMedianMs = round(median(b.restoredMs), 0);
  b.speedup = round(b.coldMedianMs / b.restoredMedianMs, 1);
  b.restoredOverCold = round(b.restoredMedianMs / b.coldMedianMs, 4);
  const m = results.memory;
  for (const [name, runs] of [
    ['cold', cold],
    ['restored', restored],
  ]) {
    for (const field of ['pss', 'rss', 'pssAnon', 'pssFile']) {
      const samples = runs.map((r) => round(r.mem[field], 1));
      const key = `${name}${field[0].toUpperCase()}${field.slice(1)}`;
      m[`${key}MiB`] = samples;
      m[`${key}MedianMiB`] = samples.includes(null) ? null : round(median(samples), 1);
    }
  }
  m.restoredOverColdPss = round(m.restoredPssMedianMiB / m.coldPssMedianMiB, 3);
  m.restoredOverColdRss = round(m.restoredRssMedianMiB / m.coldRssMedianMiB, 3);
}

async function manyRestored() {
  log(`${CLONES} restored guests at once`);
  const start = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: CLONES }, () => startGuest({ ...BASE, snapshot: true })));
  const vms = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  try {
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    if (vms.some((vm) => !vm.info.snapshot)) throw new Error('a clone fell back to a cold boot; the memory sum would be meaningless');
    await Promise.all(vms.map(async (vm) => must(await vm.exec(['true']), 'true')));
    const ms = performance.now() - start;
    // read while all of them run: PSS divides the template's shared pages among the clones
    const each = await Promise.all(vms.map((vm) => memMiB(vm.pid)));
    const m = results.memory;
    const sum = (field) =>
      round(
        each.reduce((a, x) => a + x[field], 0),
        1,
      );
    m.clones = CLONES;
    m.clonesPssMiB = each.map((x) => round(x.pss, 1));
    m.clonesRssMiB = each.map((x) => round(x.rss, 1));
    m.clonesPssSumMiB = sum('pss');
    m.clonesRssSumMiB = sum('rss');
    m.clonesPssSumOverColdPss = round(m.clonesPssSumMiB / m.coldPssMedianMiB, 2);
    m.clonesRssSumOverColdRss = round(m.clonesRssSumMiB / m.coldRssMedianMiB, 2);
    results.boot.clonesAllReadyMs = round(ms, 0);
    log(`  all ${CLONES} answered true after ${ms.toFixed(0)} ms; PSS sum ${m.clonesPssSumMiB} MiB (${m.clonesPssSumOverColdPss}× one cold guest), RSS sum ${m.clonesRssSumMiB} MiB`);
  } finally {
    await Promise.all(vms.map(stopGuest));
  }
}

async function sshSection(tmp) {
  const key = join(tmp, 'id_ed25519');
  await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kvmtest-bench', '-f', key]);
  const port = await freePort();
  log(`ssh guest: cold boot with a forward 127.0.0.1:${port} → 22`);
  const vm = await startGuest({ ...BASE, network: { forwards: [{ host: port, guest: 22 }] } });
  const sshBase = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', key];
  const sshArgs = [...sshBase, '-p', String(port), 'root@127.0.0.1'];
  const ctl = join(tmp, 'ctl.sock');
  let master = false;
  try {
    results.accel ??= vm.info.accel;
    // sshd: public key in, unmask, host key, start
    await vm.push(`${key}.pub`, '/root/bench_key.pub');
    must(
      await vm.exec(
        [
          'sh',
          '-c',
          'set -e; install -d -m 700 /root/.ssh; cat /root/bench_key.pub >> /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys; systemctl unmask ssh.service ssh.socket; ssh-keygen -A; systemctl start ssh',
        ],
        { timeout: '120s' },
      ),
      'starting sshd',
    );
    for (let i = 0; ; i++) {
      try {
        await execFile('ssh', [...sshArgs, '-o', 'ConnectTimeout=20', 'true'], { timeout: 60_000 });
        break;
      } catch (error) {
        if (i >= 20) throw new Error(`ssh to the guest never worked: ${error.stderr || error.message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    log('  sshd answers');

    // agent exec round trips
    const agent = [];
    for (let i = 0; i < 10; i++) must(await vm.exec(['true']), 'true'); // warm-up
    for (let i = 0; i < EXECS; i++) {
      const s = performance.now();
      must(await vm.exec(['true']), 'true');
      agent.push(performance.now() - s);
    }
    results.exec.agentMs = agent.map((x) => round(x, 2));
    results.exec.agentMedianMs = round(median(agent), 2);
    log(`  agent exec true: median ${results.exec.agentMedianMs} ms over ${EXECS}`);

    // ssh, fresh connection per call
    const fresh = [];
    let wanted = SSH_WANTED;
    for (let i = 0; i < wanted; i++) {
      const s = performance.now();
      await execFile('ssh', [...sshArgs, 'true'], { timeout: 60_000 });
      fresh.push(performance.now() - s);
      if (i === 9 && median(fresh) > 300 && wanted > 50) {
        wanted = 50;
        results.notes.push(`ssh (fresh connection) took ${median(fresh).toFixed(0)} ms per call under ${vm.info.accel}: measured 50 round trips instead of ${SSH_WANTED}`);
        log(`  ssh is slow (${median(fresh).toFixed(0)} ms/call): 50 round trips instead of ${SSH_WANTED}`);
      }
    }
    results.exec.sshFreshMs = fresh.map((x) => round(x, 1));
    results.exec.sshFreshMedianMs = round(median(fresh), 1);
    results.exec.sshFreshCount = fresh.length;
    results.exec.sshFreshOverAgent = round(results.exec.sshFreshMedianMs / results.exec.agentMedianMs, 1);
    log(`  ssh true (fresh connection): median ${results.exec.sshFreshMedianMs} ms over ${fresh.length}`);

    // ssh, ControlMaster multiplexing (one connection, a new session per call)
    await execFile('ssh', [...sshBase, '-p', String(port), '-o', 'ControlMaster=yes', '-o', `ControlPath=${ctl}`, '-fN', 'root@127.0.0.1'], { timeout: 60_000 });
    master = true;
    const muxArgs = [...sshBase, '-p', String(port), '-o', 'ControlMaster=no', '-o', `ControlPath=${ctl}`, 'root@127.0.0.1', 'true'];
    for (let i = 0; i < 5; i++) await execFile('ssh', muxArgs, { timeout: 60_000 });
    const mux = [];
    for (let i = 0; i < SSH_WANTED; i++) {
      const s = performance.now();
      await execFile('ssh', muxArgs, { timeout: 60_000 });
      mux.push(performance.now() - s);
    }
    results.exec.sshMuxMs = mux.map((x) => round(x, 1));
    results.exec.sshMuxMedianMs = round(median(mux), 1);
    results.exec.sshMuxOverAgent = round(results.exec.sshMuxMedianMs / results.exec.agentMedianMs, 1);
    log(`  ssh true (ControlMaster): median ${results.exec.sshMuxMedianMs} ms over ${mux.length}`);

    // push throughput: one large file, and this repository's node_modules (a real tree), by stream, by disk, by scp / tar | ssh
    const file = join(tmp, 'big');
    const sha = createHash('sha256');
    await new Promise((resolve, reject) => {
      const out = createWriteStream(file);
      out.on('error', reject);
      out.on('finish', resolve);
      let left = PUSH_MIB;
      const writeMore = () => {
        while (left > 0) {
          const chunk = randomBytes(1 << 20);
          sha.update(chunk);
          left--;
          if (!out.write(chunk)) return out.once('drain', writeMore);
        }
        out.end();
      };
      writeMore();
    });
    const want = sha.digest('hex');
    const p = results.push;
    p.mib = PUSH_MIB;
    const timedFile = async (label, run) => {
      log(`  ${label}: ${PUSH_MIB} MiB`);
      const s = performance.now();
      await run();
      const ms = performance.now() - s;
      const got = must(await vm.exec(['sh', '-c', 'sha256sum /root/big-in && rm -f /root/big-in'], { timeout: '300s' }), 'sha256sum').stdout.split(/\s+/)[0];
      if (got !== want) throw new Error(`${label}: sha256 mismatch: want ${want}, got ${got}`);
      log(`    ${(PUSH_MIB / (ms / 1000)).toFixed(1)} MiB/s (sha256 verified)`);
      return ms;
    };
    p.streamMs = round(await timedFile('push by stream', () => vm.push(file, '/root/big-in', { via: 'stream' })), 0);
    p.diskMs = round(await timedFile('push by disk', () => vm.push(file, '/root/big-in', { via: 'disk' })), 0);
    p.scpMs = round(await timedFile('scp', () => execFile('scp', [...sshBase, '-P', String(port), file, 'root@127.0.0.1:/root/big-in'], { timeout: 1_800_000 })), 0);
    p.sha256Verified = true;
    p.streamMiBps = round(PUSH_MIB / (p.streamMs / 1000), 1);
    p.diskMiBps = round(PUSH_MIB / (p.diskMs / 1000), 1);
    p.scpMiBps = round(PUSH_MIB / (p.scpMs / 1000), 1);
    p.diskOverStream = round(p.streamMs / p.diskMs, 1);
    p.diskOverScp = round(p.scpMs / p.diskMs, 2);
    // the agent's path as before this change, for the older rows
    p.agentMs = p.diskMs;
    p.agentMiBps = p.diskMiBps;
    p.agentOverScp = round(p.diskMiBps / p.scpMiBps, 2);
    await rm(file, { force: true });

    const tree = join(here, '..', 'node_modules');
    const digest = join(here, '..', 'test', 'fixtures', 'tree-digest.py');
    await vm.push(digest, '/root/tree-digest.py', { via: 'stream' });
    const treeWant = (await execFile('python3', [digest, tree])).stdout.trim();
    p.tree = { entries: Number(treeWant.split(' ')[0]) };
    const timedTree = async (label, run) => {
      log(`  ${label}: node_modules (${p.tree.entries} entries)`);
      const s = performance.now();
      await run();
      const ms = performance.now() - s;
      const got = must(await vm.exec(['sh', '-c', 'python3 /root/tree-digest.py /root/nm-in && rm -rf /root/nm-in'], { timeout: '300s' }), 'tree digest').stdout.trim();
      if (got !== treeWant) throw new Error(`${label}: the tree differs: want ${treeWant}, got ${got}`);
      log(`    ${(ms / 1000).toFixed(1)} s (tree digest verified)`);
      return ms;
    };
    p.tree.streamMs = round(await timedTree('push by stream', () => vm.push(tree, '/root/nm-in', { via: 'stream' })), 0);
    p.tree.diskMs = round(await timedTree('push by disk', () => vm.push(tree, '/root/nm-in', { via: 'disk' })), 0);
    p.tree.tarSshMs = round(
      await timedTree('tar | ssh', () =>
        execFile('sh', ['-c', `tar -C "$1" -cf - . | ssh ${sshBase.map((a) => `'${a}'`).join(' ')} -p ${port} root@127.0.0.1 'mkdir -p /root/nm-in && tar -C /root/nm-in -xf -'`, 'sh', tree], {
          timeout: 1_800_000,
          maxBuffer: 1 << 26,
        }),
      ),
      0,
    );
    p.tree.diskOverStream = round(p.tree.streamMs / p.tree.diskMs, 1);
    p.tree.diskOverTarSsh = round(p.tree.tarSshMs / p.tree.diskMs, 2);
    log(`  node_modules: disk ${p.tree.diskOverStream}× faster than the stream, ${p.tree.diskOverTarSsh}× tar | ssh`);
  } finally {
    if (master) await execFile('ssh', [...sshBase, '-p', String(port), '-o', `ControlPath=${ctl}`, '-O', 'exit', 'root@127.0.0.1']).catch(() => {});
    await stopGuest(vm);
  }
}

/** Fresh guests taken from a pool owner in a child process, one "test" after another, as a vitest worker would. */
async function sharedHandouts() {
  const script = `const { startPoolOwner } = await import(process.argv[1]);
const owner = await startPoolOwner();
console.log(owner.socket);
process.stdin.on('end', async () => { await owner.close(); process.exit(0); });
process.stdin.resume();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, new URL('../dist/index.js', import.meta.url).href], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const socket = await new Promise((resolve, reject) => {
    child.stdout.once('data', (chunk) => resolve(String(chunk).trim()));
    child.once('exit', () => reject(new Error('the pool owner exited before it listened')));
  });
  try {
    return await handouts(await SharedGuestPool.connect(socket, { ...BASE, snapshot: true }));
  } finally {
    child.stdin.end();
    await exited;
  }
}

/** A "test" takes a guest, runs true, works for 1.5 s, disposes it (the pool restores the next one meanwhile); the pool is disposed after. */
async function handouts(pool) {
  const handout = [];
  try {
    for (let i = 0; i < HANDOUTS; i++) {
      const s = performance.now();
      const vm = await pool.take();
      handout.push(performance.now() - s);
      live.add(vm);
      must(await vm.exec(['true']), 'true');
      await new Promise((r) => setTimeout(r, 1500));
      await stopGuest(vm);
    }
  } finally {
    await pool.dispose();
  }
  return handout;
}

/** A guest after some setup, checkpointed; clones of it timed, counted in memory, handed out by a pool, churned. */
async function capsuleSection(tmp) {
  const k = results.capsule;
  log(`capsules: ${CAPSULES} saves of a restored guest (named CPU model), ${CAPSULES} restores, one cold boot of the same disk`);
  const options = { ...BASE, snapshot: true, cpu: 'Nehalem' };
  await stopGuest(await startGuest(options)); // the warm snapshot for this CPU model
  k.saveMs = [];
  k.bytes = [];
  k.restoreMs = [];
  const dirs = [];
  for (let i = 0; i < CAPSULES; i++) {
    const vm = await startGuest(options);
    must(await vm.exec(['sh', '-c', 'echo evidence > /root/evidence; setsid sleep 100000 </dev/null >/dev/null 2>&1 &']), 'setup');
    const dir = join(tmp, `capsule-${i}`);
    live.delete(vm); // saveCapsule disposes it
    const info = await vm.saveCapsule(dir);
    dirs.push(dir);
    k.saveMs.push(round(info.tookMs, 0));
    k.bytes.push(info.bytes);
    k.stateBytes = info.stateBytes;
    log(`  capsule ${i + 1}: ${(info.bytes / 2 ** 20).toFixed(1)} MiB (state ${(info.stateBytes / 2 ** 20).toFixed(0)} MiB before gzip) in ${info.tookMs.toFixed(0)} ms`);
  }
  for (const dir of dirs) {
    const t = performance.now();
    const { guest } = await reproCapsule(dir);
    live.add(guest);
    try {
      must(await guest.exec(['sh', '-c', 'cat /root/evidence && pgrep -x sleep']), 'the saved moment');
      k.restoreMs.push(round(performance.now() - t, 0));
    } finally {
      await stopGuest(guest);
    }
    log(`  repro → first exec: ${k.restoreMs.at(-1)} ms`);
  }
  const t = performance.now();
  const { guest } = await reproCapsule(dirs[0], { cold: true });
  live.add(guest);
  try {
    must(await guest.exec(['cat', '/root/evidence']), 'the saved disk');
    k.coldMs = round(performance.now() - t, 0);
  } finally {
    await stopGuest(guest);
  }
  log(`  repro --cold → first exec: ${k.coldMs} ms`);
  k.saveMedianMs = median(k.saveMs);
  k.bytesMedianMiB = round(median(k.bytes) / 2 ** 20, 1);
  k.bytesOverRam = round(median(k.bytes) / (1024 * 2 ** 20), 3);
  k.restoreMedianMs = median(k.restoreMs);
  k.coldOverRestore = round(k.coldMs / k.restoreMedianMs, 1);
}

/** node: 'host' in a matrix cell (the cached toolchain disk, mounted) vs the copy it replaced (node and npm streamed). */
async function nodeSection(tmp) {
  const n = (results.push.node = {});
  log("node: 'host': a matrix cell's node phase (the second run: the toolchain image is cached by the first)");
  const cell = async (i) => {
    const report = await runMatrix({
      images: ['debian-12'],
      boot: { boot: 'kernel', cpus: 2, memory: '1G' },
      node: 'host',
      run: 'node --version',
      capsule: 'never',
      concurrency: 1,
      outDir: join(tmp, `node-${i}`),
    });
    if (report.cells[0].status !== 'passed') throw new Error(`node: 'host' cell ${report.cells[0].status}: ${JSON.stringify(report.cells[0].error ?? report.cells[0].stderrTail)}`);
    return report.cells[0].durations.node;
  };
  n.firstMs = await cell(1);
  n.mountedMs = await cell(2);
  log(`  node phase: ${n.mountedMs} ms (first run, image made: ${n.firstMs} ms)`);
  const vm = await startGuest({ ...BASE, snapshot: true });
  try {
    const s = performance.now();
    await vm.push(process.execPath, '/opt/copy/bin/node', { via: 'stream' });
    await vm.push(join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm'), '/opt/copy/lib/node_modules/npm', { via: 'stream' });
    n.copyMs = round(performance.now() - s, 0);
  } finally {
    await stopGuest(vm);
  }
  log(`  a streamed copy of node and npm: ${n.copyMs} ms`);
}

async function checkpointSection() {
  const c = results.checkpoint;
  log('checkpoint: a restored guest after a setup step');
  const source = await startGuest({ ...BASE, snapshot: true });
  const made = [];
  try {
    must(await source.exec(['sh', '-c', 'dd if=/dev/urandom of=/root/data bs=1M count=64 status=none; setsid sleep 100000 </dev/null >/dev/null 2>&1 & sync']), 'setup');
    for (let i = 0; i < CHECKPOINTS; i++) {
      const ck = await source.checkpoint();
      made.push(ck);
      log(`  checkpoint ${i + 1}/${CHECKPOINTS}: ${ck.info.tookMs.toFixed(0)} ms (guest paused ${ck.info.pauseMs.toFixed(0)} ms)`);
    }
    c.checkpointMs = made.map((ck) => round(ck.info.tookMs, 0));
    c.pauseMs = made.map((ck) => round(ck.info.pauseMs, 0));
    c.checkpointMedianMs = round(median(c.checkpointMs), 0);
    c.pauseMedianMs = round(median(c.pauseMs), 0);
    const ck = made[0];

    const firstExec = [];
    for (let i = 0; i < BOOTS; i++) {
      const s = performance.now();
      const vm = await ck.boot();
      live.add(vm);
      must(await vm.exec(['true']), 'true');
      firstExec.push(performance.now() - s);
      await stopGuest(vm);
    }
    c.cloneToExecMs = firstExec.map((x) => round(x, 0));
    c.cloneToExecMedianMs = round(median(firstExec), 0);
    log(`  clone of the checkpoint → first exec: median ${c.cloneToExecMedianMs} ms`);

    log(`  ${CLONES} clones of the checkpoint at once`);
    const clones = await Promise.all(
      Array.from({ length: CLONES }, async () => {
        const vm = await ck.boot();
        live.add(vm);
        return vm;
      }),
    );
    try {
      await Promise.all(clones.map(async (vm) => must(await vm.exec(['true']), 'true')));
      const each = await Promise.all(clones.map((vm) => memMiB(vm.pid)));
      c.clonesPssSumMiB = round(
        each.reduce((a, x) => a + x.pss, 0),
        1,
      );
      c.clonesPssSumOverColdPss = round(c.clonesPssSumMiB / results.memory.coldPssMedianMiB, 2);
      log(`  PSS sum ${c.clonesPssSumMiB} MiB (${c.clonesPssSumOverColdPss}× one cold guest)`);
    } finally {
      await Promise.all(clones.map(stopGuest));
    }

    log(`  ${HANDOUTS} hand-outs from a pool while the previous test runs`);
    const handout = await handouts(new GuestPool(() => ck.boot()).warm());
    c.poolHandoutMs = handout.map((x) => round(x, 1));
    c.poolHandoutMedianMs = round(median(handout.slice(1)), 1); // the first waits for the pool's first restore
    c.onDemandOverPool = round(median(c.cloneToExecMs) / c.poolHandoutMedianMs, 0);
    log(`  pool hand-out: median ${c.poolHandoutMedianMs} ms (on demand: ${c.cloneToExecMedianMs} ms)`);

    // the same with the pool in another process (what a vitest run's workers share): the guest is lent,
    // the taker connects its own QMP and agent links
    log(`  ${HANDOUTS} hand-outs from a shared pool owned by another process`);
    const sharedHandout = await sharedHandouts();
    c.sharedHandoutMs = sharedHandout.map((x) => round(x, 1));
    c.sharedHandoutMedianMs = round(median(sharedHandout.slice(1)), 1);
    log(`  shared pool hand-out: median ${c.sharedHandoutMedianMs} ms`);

    for (const mode of ['pool', 'onDemand']) {
      log(`  churn for ${CHURN_S} s (${mode === 'pool' ? 'with a pool of one' : 'boot on demand'}): clone, true, dispose`);
      const churnPool = mode === 'pool' ? new GuestPool(() => ck.boot()).warm() : undefined;
      let n = 0;
      const s = performance.now();
      try {
        while (performance.now() - s < CHURN_S * 1000) {
          const vm = churnPool ? await churnPool.take() : await ck.boot();
          live.add(vm);
          must(await vm.exec(['true']), 'true');
          await stopGuest(vm);
          n++;
        }
      } finally {
        await churnPool?.dispose();
      }
      const perMin = round((n / (performance.now() - s)) * 60_000, 0);
      c[`${mode}ClonesPerMinute`] = perMin;
      log(`  ${perMin} fresh clones per minute (${mode})`);
    }
    c.clonesPerMinute = Math.max(c.poolClonesPerMinute, c.onDemandClonesPerMinute);
  } finally {
    for (const ck of made) await ck.dispose();
    await stopGuest(source);
  }
}

function table() {
  const b = results.boot;
  const m = results.memory;
  const mib = (x) => (x != null ? `${x} MiB` : '-');
  const e = results.exec;
  const p = results.push;
  const c = results.checkpoint;
  const rows = [
    ['boot() → first exec true, cold (median)', b.coldMedianMs != null ? `${(b.coldMedianMs / 1000).toFixed(1)} s` : '-'],
    ['boot() → first exec true, restored (median)', b.restoredMedianMs != null ? `${b.restoredMedianMs} ms` : '-'],
    ['  restored / cold', b.restoredOverCold != null ? `1/${b.speedup} (target ≤ 1/60: ${b.speedup >= 60 ? 'met' : 'NOT met'}; earlier target ≤ 1/20: ${b.speedup >= 20 ? 'met' : 'NOT met'})` : '-'],
    ['QEMU PSS, cold guest (median)', mib(m.coldPssMedianMiB)],
    ['QEMU PSS, restored guest (median)', m.restoredPssMedianMiB != null ? `${m.restoredPssMedianMiB} MiB (${m.restoredOverColdPss}× cold)` : '-'],
    [`QEMU PSS, ${CLONES} restored guests (sum)`, m.clonesPssSumMiB != null ? `${m.clonesPssSumMiB} MiB (all answered in ${(b.clonesAllReadyMs / 1000).toFixed(1)} s)` : '-'],
    [`  ${CLONES} restored / 1 cold (PSS)`, m.clonesPssSumOverColdPss != null ? `${m.clonesPssSumOverColdPss}× (target ≤ 1.5×: ${m.clonesPssSumOverColdPss <= 1.5 ? 'met' : 'NOT met'})` : '-'],
    ['QEMU RSS, cold / restored guest (median)', m.coldRssMedianMiB != null ? `${m.coldRssMedianMiB} / ${m.restoredRssMedianMiB} MiB` : '-'],
    [`QEMU RSS, ${CLONES} restored guests (sum)`, m.clonesRssSumMiB != null ? `${m.clonesRssSumMiB} MiB (${m.clonesRssSumOverColdRss}× one cold; counts shared pages once per guest)` : '-'],
    ['exec true, agent (median)', e.agentMedianMs != null ? `${e.agentMedianMs} ms (n=${e.agentMs.length})` : '-'],
    ['exec true, ssh fresh connection (median)', e.sshFreshMedianMs != null ? `${e.sshFreshMedianMs} ms (n=${e.sshFreshCount})` : '-'],
    ['  ssh / agent', e.sshFreshOverAgent != null ? `${e.sshFreshOverAgent}× (target ≥ 5×: ${e.sshFreshOverAgent >= 5 ? 'met' : 'NOT met'})` : '-'],
    ['exec true, ssh ControlMaster (median)', e.sshMuxMedianMs != null ? `${e.sshMuxMedianMs} ms (n=${e.sshMuxMs.length})` : '-'],
    ['  ssh mux / agent', e.sshMuxOverAgent != null ? `${e.sshMuxOverAgent}×` : '-'],
    [
      `push ${PUSH_MIB} MiB file: stream / disk / scp`,
      p.diskMiBps != null
        ? `${p.streamMiBps} / ${p.diskMiBps} / ${p.scpMiBps} MiB/s: disk ${p.diskOverStream}× the stream (target ≥ 3×: ${p.diskOverStream >= 3 ? 'met' : 'NOT met'}), ${p.diskOverScp}× scp`
        : '-',
    ],
    [
      `push node_modules (${p.tree?.entries ?? '?'} entries): stream / disk / tar | ssh`,
      p.tree?.diskMs != null
        ? `${(p.tree.streamMs / 1000).toFixed(1)} / ${(p.tree.diskMs / 1000).toFixed(1)} / ${(p.tree.tarSshMs / 1000).toFixed(1)} s: disk ${p.tree.diskOverStream}× the stream (target ≥ 5×: ${p.tree.diskOverStream >= 5 ? 'met' : 'NOT met'}), ${p.tree.diskOverTarSsh}× tar | ssh`
        : '-',
    ],
    [
      "node: 'host' in a cell (node phase): mounted / streamed copy",
      p.node?.mountedMs != null ? `${(p.node.mountedMs / 1000).toFixed(2)} s / ${(p.node.copyMs / 1000).toFixed(1)} s (target ≤ 2 s: ${p.node.mountedMs <= 2000 ? 'met' : 'NOT met'})` : '-',
    ],
    [
      'checkpoint() of a running 1 GiB guest (median)',
      c.checkpointMedianMs != null ? `${c.checkpointMedianMs} ms, guest paused ${c.pauseMedianMs} ms (target ≤ 1 s: ${c.checkpointMedianMs <= 1000 ? 'met' : 'NOT met'})` : '-',
    ],
    ['clone of a checkpoint → first exec true (median)', c.cloneToExecMedianMs != null ? `${c.cloneToExecMedianMs} ms` : '-'],
    [
      `QEMU PSS, ${CLONES} clones of a checkpoint (sum)`,
      c.clonesPssSumMiB != null ? `${c.clonesPssSumMiB} MiB = ${c.clonesPssSumOverColdPss}× one cold guest (target ≤ 1.5×: ${c.clonesPssSumOverColdPss <= 1.5 ? 'met' : 'NOT met'})` : '-',
    ],
    [
      'fresh guest from the pool (median hand-out)',
      c.poolHandoutMedianMs != null ? `${c.poolHandoutMedianMs} ms vs ${c.cloneToExecMedianMs} ms on demand (target ≤ 50 ms: ${c.poolHandoutMedianMs <= 50 ? 'met' : 'NOT met'})` : '-',
    ],
    [
      'fresh guest from a shared pool in another process (median hand-out)',
      c.sharedHandoutMedianMs != null ? `${c.sharedHandoutMedianMs} ms (target ≤ 50 ms: ${c.sharedHandoutMedianMs <= 50 ? 'met' : 'NOT met'})` : '-',
    ],
    [
      'saveCapsule() of a 1 GiB guest (median)',
      results.capsule.saveMedianMs != null ? `${results.capsule.saveMedianMs} ms, ${results.capsule.bytesMedianMiB} MiB on disk = ${results.capsule.bytesOverRam}× its RAM` : '-',
    ],
    [
      'kvmtest repro → first exec: restore / cold boot of its disk',
      results.capsule.restoreMedianMs != null ? `${results.capsule.restoreMedianMs} ms / ${results.capsule.coldMs} ms: restore ${results.capsule.coldOverRestore}× faster, processes kept` : '-',
    ],
    [
      'fresh clones per minute (clone, true, dispose)',
      c.clonesPerMinute != null ? `${c.poolClonesPerMinute} with a pool of one, ${c.onDemandClonesPerMinute} on demand (target ≥ 100: ${c.clonesPerMinute >= 100 ? 'met' : 'NOT met'})` : '-',
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = [
    `kvmtest bench ${results.date}: ${results.host.cpus} × ${results.host.model}, ${results.host.memoryGiB} GiB, accel ${results.accel}, ${results.qemu}`,
    `guest: debian-12, boot kernel, 2 vCPUs, 1 GiB`,
    ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`),
    ...results.notes.map((n) => `note: ${n}`),
  ];
  return lines.join('\n');
}

async function main() {
  const qemu = await execFile('qemu-system-x86_64', ['--version']).catch(() => null);
  results.qemu = qemu ? qemu.stdout.split('\n')[0].trim() : 'unknown';
  for (const tool of ['ssh', 'scp', 'ssh-keygen']) {
    await execFile('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} not found: apt-get install openssh-client (scripts/setup does)`);
    });
  }
  const tmp = await mkdtemp(join(os.tmpdir(), 'kvmtest-bench-'));
  let failure;
  try {
    await bootSection();
    await manyRestored();
    await checkpointSection();
    await capsuleSection(tmp);
    await nodeSection(tmp);
    await sshSection(tmp);
  } catch (error) {
    failure = error;
    results.error = String(error?.stack ?? error);
  } finally {
    await Promise.allSettled([...live].map((vm) => stopGuest(vm)));
    await rm(tmp, { recursive: true, force: true });
  }
  results.totalSeconds = round((performance.now() - t0) / 1000, 0);
  const outDir = join(here, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${table()}\n\nwrote ${join(outDir, 'latest.json')}\n`);
  if (failure) {
    process.stderr.write(`bench failed: ${failure.stack ?? failure}\n`);
    process.exitCode = 1;
  }
}

await main();
