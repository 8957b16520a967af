#!/usr/bin/env node
import { Command, Option } from 'commander';
import { isKvmtestError, kvmtestError } from '../errors.js';
import type { BootOptions } from '../guest/options.js';
import { ensureImage } from '../image/build.js';
import { isRecipeName, RECIPES } from '../image/recipes.js';
import { MACHINE_ARCHES } from '../qemu/arch.js';
import { createProgress } from '../util/progress.js';
import { sanitize } from '../util/sanitize.js';
import { cacheList, cachePrune } from './cache.js';
import { doctor, formatDoctor } from './doctor.js';
import { imageList, imagePrune, imagePull, imageRemove } from './image.js';
import { onInterrupt } from './interrupt.js';
import { matrixCommand, mergeCommand, REPORTERS } from './matrix.js';
import { reproCommand } from './repro.js';
import { runCommand } from './run.js';
import { shellCommand } from './shell.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/** The options every command that boots one guest takes (run, shell). */
function withGuestOptions(command: Command): Command {
  return command
    .requiredOption('--image <image>', 'disk image path (qcow2/raw) or a name such as debian-12')
    .addOption(archOption())
    .option('--memory <size>', 'guest memory', '1G')
    .option('--cpus <n>', 'vCPUs', (v) => Number(v), 2)
    .addOption(new Option('--accel <accel>', 'acceleration').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .addOption(new Option('--boot <method>', "firmware boot or the named image's kernel").choices(['firmware', 'kernel']).default('firmware'));
}

/** --arch: the guest's architecture (default the host's); another is emulated. */
function archOption(): Option {
  return new Option('--arch <arch>', "the guest's architecture (default the host's; another is emulated)").choices([...MACHINE_ARCHES]);
}

type GuestFlags = 'image' | 'memory' | 'cpus' | 'accel' | 'boot';
/** What withGuestOptions parsed, as boot options (commander's values are untyped). */
function guestBootOptions(opts: Required<Pick<BootOptions, GuestFlags>> & Pick<BootOptions, 'arch'>): Pick<BootOptions, GuestFlags | 'arch'> {
  return { image: opts.image, ...(opts.arch ? { arch: opts.arch } : {}), memory: opts.memory, cpus: opts.cpus, accel: opts.accel, boot: opts.boot };
}

const program = new Command().name('kvmtest').description('Run tests inside throwaway KVM/QEMU guests booted from cloud images').showHelpAfterError();

withGuestOptions(program.command('run'))
  .description('boot a guest, run a command with live output, pull results, exit with its status')
  .option('--push <src:dest>', 'copy a host path into the guest before the command (repeatable)', collect, [])
  .option('--pull <src:dest>', 'copy a guest path to the host after the command (repeatable)', collect, [])
  .option('--env <name=value>', 'environment for the command (repeatable)', collect, [])
  .option('--cwd <dir>', 'working directory in the guest')
  .option('--timeout <duration>', 'command timeout, e.g. 10m')
  .option('--boot-timeout <duration>', 'how long to wait for the guest agent')
  .option('--snapshot', 'restore from a warm snapshot of the image and settings (made on first use)')
  .option('--setup <shell>', 'run once and cache as a layer on the warm snapshot (implies --snapshot); later runs restore after it')
  .option('--setup-push <src:dest>', 'copy a host path in before --setup (repeatable; its content is part of the layer key)', collect, [])
  .argument('<command...>', 'the command and its arguments (after --)')
  .action(async (command: string[], opts) => {
    process.exitCode = await runCommand(command, {
      ...(opts.setup !== undefined ? { setupRun: opts.setup } : {}),
      setupPush: opts.setupPush,
      ...guestBootOptions(opts),
      push: opts.push,
      pull: opts.pull,
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.timeout ? { timeout: opts.timeout } : {}),
      ...(opts.bootTimeout ? { bootTimeout: opts.bootTimeout } : {}),
      ...(opts.snapshot ? { snapshot: true } : {}),
    });
  });

withGuestOptions(program.command('shell'))
  .description('boot a guest and open a terminal in it (a login shell, or the command given); exits with its status')
  .option('--push <src:dest>', 'copy a host path into the guest first (repeatable)', collect, [])
  .option('--env <name=value>', 'environment for the shell (repeatable)', collect, [])
  .option('--cwd <dir>', 'working directory in the guest')
  .option('--snapshot', 'restore from a warm snapshot of the image and settings (made on first use)')
  .argument('[command...]', 'what to run instead of a login shell (after --)')
  .action(async (command: string[], opts) => {
    process.exitCode = await shellCommand(command, {
      ...guestBootOptions(opts),
      push: opts.push,
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.snapshot ? { snapshot: true } : {}),
    });
  });

program
  .command('matrix')
  .description('run one job in every cell of an OS matrix (images × axes) and report per cell; reads kvmtest.config.ts')
  .option('--config <file>', 'config file (default: kvmtest.config.{ts,mts,js,mjs,json} in the current directory)')
  .option('--image <image>', "an image name or path (repeatable; replaces the config's images)", collect, [])
  .option('--vary <axis=v1,v2>', 'an axis crossed with the images, such as cpus=1,2 (repeatable)', collect, [])
  .option('--shard <i/n>', 'run shard i of n (for n parallel CI jobs; combine their reports with kvmtest merge)')
  .option('--reporter <name>', `${REPORTERS.join(', ')} (repeatable; github is added under GitHub Actions)`, collect, [])
  .option('--out <dir>', 'where the JSON report, JUnit XML, collected files and console logs go', 'kvmtest-results')
  .option('--concurrency <n>', "cells at once, or 'auto' (fits the host's CPUs and free memory)")
  .option('--timeout <duration>', 'per cell, boot to pull (default 30m)')
  .option('--retries <n>', 'run a failing cell again up to n times; a later pass is reported as flaky')
  .option('--fail-fast', 'stop at the first failing cell')
  .addOption(new Option('--node <which>', "'host' copies this Node.js into each guest, first on PATH").choices(['host', 'guest']))
  .option('--push <src:dest>', 'copy a host path into each guest (repeatable)', collect, [])
  .option('--mount <dir:dest>', 'show a host directory read-only in each guest (a disk image of it; repeatable)', collect, [])
  .option('--collect <path>', 'guest file or directory to pull back; JUnit/TAP files are parsed (repeatable)', collect, [])
  .option('--env <name=value>', 'environment for the command (repeatable)', collect, [])
  .option('--cwd <dir>', 'working directory in the guest')
  .option('--memory <size>', 'guest memory for every cell')
  .option('--cpus <n>', 'vCPUs for every cell')
  .addOption(new Option('--accel <accel>', 'acceleration').choices(['auto', 'kvm', 'tcg']))
  .addOption(new Option('--boot <method>', "firmware boot or the named image's kernel").choices(['firmware', 'kernel']))
  .option('--no-snapshot', 'boot every cell cold instead of from a warm snapshot')
  .addOption(
    new Option('--capsule <when>', "save a failing cell's whole machine into <out>/cells/<id>/capsule (kvmtest repro opens it); default on-failure under CI, else never").choices([
      'on-failure',
      'always',
      'never',
    ]),
  )
  .option('--capsule-env', "keep the env's values in capsules (default: names only; a value may be a secret)")
  .option(
    '--capsule-budget <size>',
    "what this run's capsules may take together (default 8G); past it, or past the output filesystem's free space, a cell's capsule is not saved and its result says why",
  )
  .argument('[command...]', "the command (after --); replaces the config's run")
  .action(async (command: string[], opts) => {
    process.exitCode = await matrixCommand(command, opts);
  });

program
  .command('repro')
  .description("restore a failure capsule (a cell's machine as it was when it failed) and open a shell in it, or run a command there")
  .argument('<capsule>', 'the capsule directory: <out>/cells/<id>/capsule')
  .argument('[command...]', 'run this instead of a shell (after --); exits with its status')
  .option('--cold', "boot the capsule's disk afresh instead of restoring its RAM (when this host cannot restore it)")
  .option('--base <file>', "the base image file (same content as the capsule's; default found by the capsule's image name)")
  .addOption(new Option('--accel <accel>', 'acceleration').choices(['auto', 'kvm', 'tcg']))
  .option('--trust-qemu-args', 'pass the extra QEMU arguments the capsule was saved with (they can open host files: only for capsules you made)')
  .option('--network', 'give the machine the network it was saved with, outbound connections included (default: its NIC reaches nothing; forwards still work)')
  .action(async (dir: string, command: string[], opts) => {
    process.exitCode = await reproCommand(dir, command, {
      ...(opts.cold ? { cold: true } : {}),
      ...(opts.network ? { network: true } : {}),
      ...(opts.base ? { base: opts.base } : {}),
      ...(opts.accel ? { accel: opts.accel } : {}),
      ...(opts.trustQemuArgs ? { trustQemuArgs: true } : {}),
    });
  });

program
  .command('merge')
  .description("combine the JSON reports of a sharded matrix's CI jobs into one report")
  .argument('<reports...>', 'JSON reports written by kvmtest matrix --shard')
  .option('--junit <file>', 'write the merged JUnit XML here')
  .option('--json <file>', 'write the merged JSON report here')
  .option('--html <file>', 'write the merged report as one self-contained HTML page here')
  .option('--reporter <name>', `${REPORTERS.join(', ')} (repeatable)`, collect, [])
  .action(async (files: string[], opts) => {
    process.exitCode = await mergeCommand(files, opts);
  });

program
  .command('doctor')
  .description('check QEMU, qemu-img, the ISO tool and KVM, and say how to fix what is missing')
  .action(async () => {
    const lines = await doctor();
    process.stdout.write(`${formatDoctor(lines)}\n`);
    process.exitCode = lines.every((l) => l.ok) ? 0 : 1;
  });

const image = program.command('image').description('the image catalog and cache: list, pull, rm, prune, build');
image
  .command('list')
  .description('the catalog of cloud images, and what is cached or built')
  .action(async () => {
    process.stdout.write(`${await imageList()}\n`);
  });
image
  .command('pull')
  .description("download a catalog image (or an https URL ending in #sha256=…), verify it against the publisher's checksum, cache it")
  .argument('<name-or-url>')
  .addOption(archOption())
  .action(async (spec: string, opts: { arch?: string }) => {
    using interrupt = onInterrupt();
    process.stdout.write(`${await imagePull(spec, interrupt.signal, opts.arch)}\n`);
  });
image
  .command('rm')
  .description('remove a pulled image from the cache')
  .argument('<name-or-url>')
  .action(async (name: string) => {
    process.stdout.write(`${await imageRemove(name)}\n`);
  });
image
  .command('prune')
  .description('remove pulled images unused for a while, then the least recently used beyond a size')
  .option('--older-than <age>', 'unused for longer than this, such as 30d')
  .option('--max-size <size>', 'keep the pulled images under this size, such as 20G')
  .action(async (opts) => {
    process.stdout.write(`${await imagePrune(opts)}\n`);
  });
image
  .command('build')
  .description(
    `build an image offline from Debian's archive (${Object.entries(RECIPES)
      .map(([name, r]) => `${name}: ${r.arches.join(', ')}`)
      .join('; ')})`,
  )
  .argument('<name>')
  .addOption(archOption())
  .option('--force', 'rebuild even when cached')
  .action(async (name: string, opts) => {
    if (!isRecipeName(name)) throw kvmtestError('IMAGE_UNKNOWN', `kvmtest builds ${Object.keys(RECIPES).join(', ')} offline; ${name} is not one of them (kvmtest image pull downloads catalog images)`);
    using interrupt = onInterrupt();
    // every line: the build says a step (or that one is still going) about once a minute
    const progress = createProgress(`image ${name}${opts.arch ? ` (${opts.arch})` : ''}`, process.stderr, 0);
    progress.phase('building');
    const built = await ensureImage(name, { force: Boolean(opts.force), ...(opts.arch ? { arch: opts.arch } : {}), signal: interrupt.signal, onLine: (line) => progress.update(line) }).catch(
      (error) => {
        progress.fail('failed');
        throw error;
      },
    );
    progress.done(`ready: ${built.disk}`);
  });

const cache = program.command('cache').description('the warm snapshots and setup layers in the cache: list, prune');
cache
  .command('list')
  .description('every snapshot and setup layer: image, size on disk, last use, whether it is ready')
  .action(async () => {
    process.stdout.write(`${await cacheList()}\n`);
  });
cache
  .command('prune')
  .description('remove incomplete snapshots (half-written, older formats) and those unused for a while; never one a builder holds')
  .option('--older-than <age>', 'unused for longer than this, such as 7d (default 7d)')
  .option('--all', 'remove every snapshot and layer no builder holds')
  .action(async (opts) => {
    process.stdout.write(`${await cachePrune(opts)}\n`);
  });

// messages and console tails carry guest text (console lines, QEMU's stderr, the agent's words)
program.parseAsync().catch((error: unknown) => {
  if (isKvmtestError(error)) {
    process.stderr.write(`kvmtest: ${sanitize(error.message, { multiline: true })} [${error.code}]\n`);
    if (error.consoleTail) process.stderr.write(`--- last console lines ---\n${sanitize(error.consoleTail, { multiline: true })}\n`);
  } else process.stderr.write(`kvmtest: ${sanitize(error instanceof Error ? error.message : String(error), { multiline: true })}\n`);
  process.exitCode = process.exitCode || 2;
});
