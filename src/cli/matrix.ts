import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { kvmtestError } from '../errors.js';
import { loadConfig, type MatrixConfig } from '../matrix/config.js';
import { parseAxisValue } from '../matrix/grid.js';
import { type CapsuleStorageOptions, resolveMatrixOptions } from '../matrix/options.js';
import { runMatrix } from '../matrix/run.js';
import type { AxisValue, MatrixOptions, MatrixReport } from '../matrix/types.js';
import { githubAnnotations, githubSummary } from '../report/github.js';
import { htmlChunks } from '../report/html.js';
import { reportJson } from '../report/json.js';
import { junitChunks } from '../report/junit.js';
import { mergeReports, readReportFile } from '../report/merge.js';
import { summaryTable } from '../report/table.js';
import { createTerminalReporter } from '../report/terminal.js';
import { writeChunks, writeReportFile } from '../report/write.js';
import { onInterrupt } from './interrupt.js';
import { parseCopySpec, parseEnv } from './run.js';

export const REPORTERS = ['default', 'json', 'junit', 'github', 'html'] as const;
export type ReporterName = (typeof REPORTERS)[number];

export interface MatrixFlags {
  config?: string;
  image: string[];
  vary: string[];
  shard?: string;
  reporter: string[];
  out: string;
  concurrency?: string;
  timeout?: string;
  retries?: string;
  failFast?: boolean;
  node?: 'host' | 'guest';
  push: string[];
  mount: string[];
  collect: string[];
  env: string[];
  cwd?: string;
  memory?: string;
  cpus?: string;
  accel?: 'auto' | 'kvm' | 'tcg';
  boot?: 'firmware' | 'kernel';
  snapshot: boolean;
  capsule?: 'on-failure' | 'always' | 'never';
  /** --capsule-env: keep the env's values in capsules (default: names only). */
  capsuleEnv?: boolean;
  /** --capsule-budget SIZE: what this run's capsules may take together (default 8G). */
  capsuleBudget?: string;
}

/** `--vary cpus=1,2` → ['cpus', [1, 2]]: numbers and booleans where the text is one. Pure. */
export function parseVary(spec: string): [string, AxisValue[]] {
  const at = spec.indexOf('=');
  if (at <= 0 || at === spec.length - 1) throw kvmtestError('INVALID_OPTION', `Expected --vary as NAME=V1,V2 (such as cpus=1,2), got ${JSON.stringify(spec)}`);
  return [
    spec.slice(0, at),
    spec
      .slice(at + 1)
      .split(',')
      .map(parseAxisValue),
  ];
}

/** The config file's options with the command line's on top. Pure apart from reading the config. */
export async function matrixOptionsFrom(command: string[], flags: MatrixFlags): Promise<MatrixConfig & CapsuleStorageOptions> {
  const loaded = await loadConfig(flags.config);
  const base: Partial<MatrixConfig & CapsuleStorageOptions> = loaded?.config ?? {};
  const options: Partial<MatrixConfig & CapsuleStorageOptions> = { ...base };
  if (flags.image.length > 0) options.images = flags.image;
  if (flags.vary.length > 0) options.vary = Object.fromEntries(flags.vary.map(parseVary));
  if (command.length > 0) options.run = command;
  if (flags.shard) options.shard = flags.shard;
  if (flags.concurrency) options.concurrency = flags.concurrency === 'auto' ? 'auto' : Number(flags.concurrency);
  if (flags.timeout) options.timeout = flags.timeout;
  if (flags.retries) options.retries = Number(flags.retries);
  if (flags.failFast) options.failFast = true;
  if (flags.node) options.node = flags.node;
  if (flags.push.length > 0) options.push = { ...base.push, ...copyMap(flags.push, '--push') };
  if (flags.mount.length > 0) options.mounts = { ...base.mounts, ...copyMap(flags.mount, '--mount') };
  if (flags.collect.length > 0) options.collect = flags.collect;
  if (flags.env.length > 0) options.env = { ...base.env, ...parseEnv(flags.env) };
  if (flags.cwd) options.cwd = flags.cwd;
  const boot = { ...base.boot };
  if (flags.memory) boot.memory = flags.memory;
  if (flags.cpus) boot.cpus = Number(flags.cpus);
  if (flags.accel) boot.accel = flags.accel;
  if (flags.boot) boot.boot = flags.boot;
  options.boot = boot;
  if (!flags.snapshot) options.snapshot = false;
  if (flags.capsule) options.capsule = flags.capsule;
  if (flags.capsuleEnv) options.capsuleEnv = true;
  if (flags.capsuleBudget) options.capsuleBudget = flags.capsuleBudget;
  if (!options.images) throw kvmtestError('INVALID_OPTION', 'kvmtest matrix needs images: --image debian-12 (repeatable), or "images" in kvmtest.config.ts');
  if (!options.run) throw kvmtestError('INVALID_OPTION', 'kvmtest matrix needs a command: after --, or "run" in kvmtest.config.ts');
  return options as MatrixConfig & CapsuleStorageOptions;
}

/** Repeated SRC:DEST flags as a host path → guest path map. Pure. */
function copyMap(specs: string[], flag: string): Record<string, string> {
  return Object.fromEntries(
    specs.map((spec) => {
      const { source, dest } = parseCopySpec(spec, flag);
      return [source, dest];
    }),
  );
}

/** The reporters to use: as asked, plus github under GitHub Actions. */
export function chooseReporters(asked: string[], env: NodeJS.ProcessEnv = process.env): Set<ReporterName> {
  for (const name of asked)
    if (!(REPORTERS as readonly string[]).includes(name)) throw kvmtestError('INVALID_OPTION', `Expected --reporter to be one of ${REPORTERS.join(', ')}, got ${JSON.stringify(name)}`);
  const chosen = new Set<ReporterName>(asked.length > 0 ? (asked as ReporterName[]) : ['default']);
  if (env.GITHUB_ACTIONS === 'true') chosen.add('github');
  return chosen;
}

/** kvmtest matrix: runs the matrix with the chosen reporters; the JSON report and JUnit file always go to --out. */
export async function matrixCommand(command: string[], flags: MatrixFlags): Promise<number> {
  const reporters = chooseReporters(flags.reporter);
  const options: MatrixOptions = await matrixOptionsFrom(command, flags);
  const out = resolve(flags.out);
  await mkdir(out, { recursive: true });
  // the shard names the report file; runMatrix resolves the same options again (pure, same answer)
  const { shard } = resolveMatrixOptions(options);
  const terminal = createTerminalReporter(process.stderr);
  let report: MatrixReport;
  try {
    using interrupt = onInterrupt();
    report = await runMatrix({ ...options, outDir: out, onEvent: (e) => terminal.onEvent(e), signal: interrupt.signal });
  } finally {
    terminal.close();
  }
  const jsonPath = join(out, shard.count > 1 ? `shard-${shard.index}-of-${shard.count}.json` : 'report.json');
  const whole = await writeReports(report, reporters, { json: jsonPath, junit: join(out, 'junit.xml'), ...(reporters.has('html') ? { html: join(out, 'index.html') } : {}) });
  return report.ok && whole ? 0 : 1;
}

/** kvmtest merge: one report (and JUnit file) from the shards' JSON reports. */
export async function mergeCommand(files: string[], flags: { junit?: string; json?: string; html?: string; reporter: string[] }): Promise<number> {
  const reporters = chooseReporters(flags.reporter);
  const report = mergeReports(await Promise.all(files.map((f) => readReportFile(f))), files);
  if (reporters.has('default')) process.stderr.write(`${summaryTable(report, { color: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR })}\n`);
  const whole = await writeReports(report, reporters, {
    ...(flags.json ? { json: resolve(flags.json) } : {}),
    ...(flags.junit ? { junit: resolve(flags.junit) } : {}),
    ...(flags.html ? { html: resolve(flags.html) } : {}),
  });
  return report.ok && whole ? 0 : 1;
}

/**
 * Writes the chosen reports, each as a stream (piece by piece with backpressure, never one string
 * of the whole report). A file that cannot be written whole is written reduced (without the parsed
 * cases, with a coded case per cell) and reported on stderr: false then.
 */
async function writeReports(report: MatrixReport, reporters: Set<ReporterName>, paths: { json?: string; junit?: string; html?: string }): Promise<boolean> {
  const warn = (line: string) => process.stderr.write(`${line}\n`);
  let whole = true;
  if (paths.json) whole = (await writeReportFile(paths.json, report, reportJson, warn)) && whole;
  if (reporters.has('json')) {
    await writeChunks(reportJson(report), process.stdout, { end: false }).catch((cause: unknown) => {
      throw kvmtestError('HOST_IO', `Could not write the JSON report to stdout: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    });
  }
  if (paths.junit) whole = (await writeReportFile(paths.junit, report, junitChunks, warn)) && whole;
  if (reporters.has('github')) {
    for (const line of githubAnnotations(report)) process.stdout.write(`${line}\n`);
    if (process.env.GITHUB_STEP_SUMMARY) await appendFile(process.env.GITHUB_STEP_SUMMARY, `${githubSummary(report)}\n`);
  }
  // the page links the cells' files relative to where it is, and only files beneath that directory
  const html = paths.html;
  if (html) whole = (await writeReportFile(html, report, (r) => htmlChunks(r, { baseDir: dirname(html) }), warn)) && whole;
  if (paths.json) process.stderr.write(`report: ${paths.json}${paths.junit ? `, JUnit: ${paths.junit}` : ''}${paths.html ? `, HTML: ${paths.html}` : ''}\n`);
  else if (paths.html) process.stderr.write(`HTML report: ${paths.html}\n`);
  return whole;
}
