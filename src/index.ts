// The public entry: what a user calls and the types they name. Internals (matrix expansion, sharding,
// KVM probing, recipes, result parsers) stay importable only from their modules.
export { boot } from './guest/boot.js';
export { Guest, type GuestExecOptions, type GuestInfo } from './guest/guest.js';
export type { BootOptions } from './guest/options.js';
export type { GuestState } from './guest/state.js';
export { ExecResult } from './agent/exec.js';
// a type only: its constructor takes the internal agent client; users get one from guest.spawn()
export type { GuestProcess } from './agent/exec.js';
export type { HelloAnswer, OsRelease } from './agent/protocol.js';
export type { PullOptions, PullResult } from './agent/transfer.js';
export type { DroppedMember } from './agent/pull/extract.js';
export {
  KvmtestError,
  HostError,
  InputError,
  ImageError,
  MachineError,
  BootError,
  AgentError,
  GuestCommandError,
  ResultError,
  AbortedError,
  isKvmtestError,
  type ErrorCode,
  type ErrorCategory,
} from './errors.js';
export { runMatrix } from './matrix/run.js';
export { defineConfig, type MatrixConfig } from './matrix/config.js';
export type { AxisValue, CellAttempt, CellMatch, CellSpec, CellResult, CellStatus, CellPhase, CaseStatus, TestCase, MatrixOptions, MatrixReport, MatrixEvent, ReportTotals } from './matrix/types.js';
export { mergeReports } from './report/merge.js';
export { toJUnit } from './report/junit.js';
export { githubSummary, githubAnnotations } from './report/github.js';
export { summaryTable } from './report/table.js';
export { createTerminalReporter, type ReporterStream, type TerminalReporter, type TerminalReporterOptions } from './report/terminal.js';
