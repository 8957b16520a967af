// The public entry: what a user calls and the types they name. Internals (matrix expansion, sharding,
// KVM probing, recipes, result parsers) stay importable only from their modules.

// a type only: its constructor takes the internal agent client; users get one from guest.spawn()
export type { GuestProcess } from './agent/exec.js';
export { ExecResult } from './agent/exec.js';
export type { HelloAnswer, OsRelease, TerminalSize } from './agent/protocol.js';
export type { DroppedMember } from './agent/pull/extract.js';
export type { PullOptions, PullResult } from './agent/transfer.js';
export type { CapsuleFile, CapsuleManifest } from './capsule/manifest.js';
export type { CapsuleInfo, CapsuleNotes } from './capsule/save.js';
export {
  AbortedError,
  AgentError,
  BootError,
  type ErrorCategory,
  type ErrorCode,
  GuestCommandError,
  HostError,
  ImageError,
  InputError,
  isKvmtestError,
  KvmtestError,
  MachineError,
  ResultError,
} from './errors.js';
export { boot } from './guest/boot.js';
export type { Checkpoint, CheckpointBootOptions, CheckpointInfo } from './guest/checkpoint.js';
export { Guest, type GuestExecOptions, type GuestInfo } from './guest/guest.js';
export type { BootOptions, SetupOptions } from './guest/options.js';
export { type Repro, type ReproOptions, reproCapsule } from './guest/repro.js';
export type { GuestState } from './guest/state.js';
export { defineConfig, type MatrixConfig } from './matrix/config.js';
export { runMatrix } from './matrix/run.js';
export type {
  AxisValue,
  CapsuleWhen,
  CaseStatus,
  CellAttempt,
  CellMatch,
  CellPhase,
  CellResult,
  CellSpec,
  CellStatus,
  MatrixEvent,
  MatrixOptions,
  MatrixReport,
  ReportTotals,
  TestCase,
} from './matrix/types.js';
export { type PoolOwner, type PoolOwnerOptions, startPoolOwner } from './pool/owner.js';
export { GuestPool, type PoolOptions } from './pool/pool.js';
export { type GuestSource, SharedGuestPool } from './pool/shared.js';
export { githubAnnotations, githubSummary } from './report/github.js';
export { toHtml } from './report/html.js';
export { toJUnit } from './report/junit.js';
export { mergeReports } from './report/merge.js';
export { summaryTable } from './report/table.js';
export { createTerminalReporter, type ReporterStream, type TerminalReporter, type TerminalReporterOptions } from './report/terminal.js';
