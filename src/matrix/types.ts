import type { BootOptions, SetupOptions } from '../guest/options.js';
import type { CaseStatus, TestCase } from '../results/types.js';

export type { CaseStatus, TestCase };

/** Values an axis may take: anything that prints well in a cell id. */
export type AxisValue = string | number | boolean;

/** A rule matching cells: every named key must equal (image, or an axis). */
export type CellMatch = { image?: string } & Record<string, AxisValue | undefined>;

/** What runMatrix() and `kvmtest matrix` take (kvmtest.config.ts has the same shape). */
export interface MatrixOptions {
  /** Image names (debian-12) or paths; one matrix row per image. */
  images: string[];
  /** Extra axes crossed with the images: boot options such as cpus and memory, or any name the run reads from $KVMTEST_<NAME>. */
  vary?: Record<string, AxisValue[]>;
  /** Cells to add beyond the cross product (GitHub Actions semantics: a full combination). */
  include?: CellMatch[];
  /** Cells to drop: each rule drops every cell it matches. */
  exclude?: CellMatch[];
  /** Host path → guest path, copied in before the run. Relative host paths resolve against `cwd`. */
  push?: Record<string, string>;
  /**
   * Host path → guest path, shown read-only in each guest (an ext2 image of the directory, made once
   * per cell and mounted): faster than a push for fixtures or toolchains the run only reads.
   */
  mounts?: Record<string, string>;
  /** 'host': the host's own Node.js (binary and npm) goes into each guest, first on PATH. 'guest' (default): whatever the image has. */
  node?: 'host' | 'guest';
  /** The command: an argv array, or a string run by /bin/sh -c. */
  run: string[] | string;
  /** Environment for the run (each cell's axis values are added as KVMTEST_<AXIS>). */
  env?: Record<string, string>;
  /** Working directory of the run in the guest. */
  cwd?: string;
  /** Guest files pulled back after the run; JUnit XML and TAP files among them are parsed into test cases. */
  collect?: string[];
  /** Cells run at once: 'auto' (default) fits the host's CPUs and free memory. */
  concurrency?: 'auto' | number;
  /** Per cell, boot to pull: '15m' (default 30m). */
  timeout?: string | number;
  /** Runs again a cell that failed, errored or timed out; a later pass is reported as 'flaky'. Default 0. */
  retries?: number;
  /** Stop starting cells after the first failure; cells in flight are cancelled. Default false. */
  failFast?: boolean;
  /** Run only shard i of n (1-based), so n CI jobs cover the matrix between them. */
  shard?: { index: number; count: number } | string;
  /** Boot options shared by every cell (the axes override them). */
  boot?: Omit<BootOptions, 'image' | 'signal' | 'progress'>;
  /** Start cells from a warm snapshot of their image and settings (made once, then reused). Default true. */
  snapshot?: boolean;
  /**
   * Run once per image and settings before the cells, cached as a layer on the warm snapshot: each
   * cell starts from the state after it. Relative push sources resolve against `projectDir`.
   */
  setup?: SetupOptions;
  /**
   * Save a failure capsule of a cell's machine (RAM, devices, disk over the base, console, command)
   * into <outDir>/cells/<id>/capsule before it is disposed: 'on-failure' (default under CI, when
   * $CI is set), 'always', or 'never' (default elsewhere). With capsules on, cells run on a named
   * CPU model (x86_64: Nehalem) unless boot.cpu says otherwise, so capsules move between hosts.
   */
  capsule?: CapsuleWhen;
  /**
   * Keep the values of the run's env in each capsule's manifest (default false: only the names,
   * since a value may be a secret and a capsule travels as a CI artifact).
   */
  capsuleEnv?: boolean;
  /**
   * What this run's capsules may take on disk together: '8G' (the default), '500M' or a number of
   * MiB. A capsule whose worst case (the guest's memory, its disk layers) does not fit in what is
   * left, or in the output filesystem's free space, is not saved; the cell's result says why.
   */
  capsuleBudget?: string | number;
  /** Where collected files and console logs go; default a temporary directory kept after the run. */
  outDir?: string;
  /** Host directory relative push paths resolve against; default process.cwd() (the config file's directory for the CLI). */
  projectDir?: string;
  /** Called as cells move through their phases (the terminal reporter listens here). */
  onEvent?: (event: MatrixEvent) => void;
  signal?: AbortSignal;
}

export type CapsuleWhen = 'on-failure' | 'always' | 'never';

/** One combination: an image and one value per axis. */
export interface CellSpec {
  /** Stable and readable: `debian-12/cpus=2`; just the image for a one-axis matrix. */
  id: string;
  image: string;
  axes: Record<string, AxisValue>;
}

export type CellPhase = 'queued' | 'boot' | 'node' | 'push' | 'run' | 'pull' | 'capsule' | 'done';
export type CellStatus = 'passed' | 'failed' | 'error' | 'timeout' | 'flaky' | 'skipped';
export interface CellAttempt {
  status: Exclude<CellStatus, 'flaky' | 'skipped'>;
  exitCode: number | null;
  error?: { code: string; message: string };
  durationMs: number;
}

/** A finished cell, as every reporter and `merge` see it. */
export interface CellResult extends CellSpec {
  status: CellStatus;
  /** Exit status of the run (null when it never ended: error, timeout, signal). */
  exitCode: number | null;
  signal?: string | null;
  /** Why the cell errored or was skipped. */
  error?: { code: string; message: string; consoleTail?: string };
  /** Milliseconds spent per phase in the last attempt. */
  durations: Partial<Record<'boot' | 'node' | 'push' | 'run' | 'pull' | 'capsule', number>> & { total: number };
  /** Every attempt, in order (more than one with retries). */
  attempts: CellAttempt[];
  /** Last lines of the run's output. */
  stdoutTail: string;
  stderrTail: string;
  /** Host path of the guest's serial console log (kept for failed cells) and of the directory of the attempt judged (collected files). */
  consoleLog?: string;
  outDir?: string;
  /**
   * The failure capsule saved from this cell's machine (`kvmtest repro <dir>` steps into it): where,
   * its size, and how long the save took; or why it could not be saved.
   */
  capsule?: { dir: string; bytes: number; tookMs: number } | { error: string };
  /** What the guest agent reported: OS release, kernel. */
  guest?: { os?: string; kernel?: string; node?: string };
  /**
   * What became of each `collect` path: pulled to `host` (and parsed into `cases`), or why not.
   * `dropped`: members not made on the host (links leading outside or dangling, special files), and why.
   */
  collected?: { path: string; host?: string; cases?: number; error?: string; dropped?: { path: string; reason: string }[] }[];
  cases: TestCase[];
}

export interface ReportTotals {
  cells: number;
  passed: number;
  failed: number;
  error: number;
  timeout: number;
  flaky: number;
  skipped: number;
  cases: { total: number; passed: number; failed: number; error: number; skipped: number };
}

/** The whole run: the JSON reporter writes this and `kvmtest merge` reads it. */
export interface MatrixReport {
  kind: 'kvmtest-matrix-report';
  version: 1;
  /** Digest of the expanded matrix (all cell ids, command): shards of one matrix share it. */
  matrixKey: string;
  /** Every cell id of the full matrix, so a merge can tell which shards are missing. */
  allCellIds: string[];
  /** The shards this report covers ('1/1' for an unsharded run; several after a merge). */
  shards: string[];
  startedAt: string;
  durationMs: number;
  host: { hostname: string; accel: string; cpus: number; memoryMiB: number; node: string };
  cells: CellResult[];
  totals: ReportTotals;
  /** True when no cell failed, errored or timed out (flaky counts as ok). */
  ok: boolean;
}

export type MatrixEvent =
  | { type: 'prepare'; message: string }
  | { type: 'start'; cells: CellSpec[]; concurrency: number; shard: string }
  | { type: 'phase'; cell: CellSpec; phase: CellPhase; attempt: number }
  | { type: 'output'; cell: CellSpec; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'cell-done'; result: CellResult }
  | { type: 'end'; report: MatrixReport };
