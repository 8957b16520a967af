import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { ConsoleVerdict } from '../qemu/console.js';
import type { ConsoleView, QemuExit, QemuHandle } from '../qemu/process.js';

/** How much of the console log's end is read for its last lines. */
const TAIL_BYTES = 16 * 1024;

/**
 * A QEMU that another process (the pool's owner) runs and lent to this one: its exit and a kernel
 * panic arrive as the owner's messages, a signal is asked of the owner (the pid is not ours to
 * signal: once the owner reaped it, it may be another process's), the console is read from its log.
 */
export class RemoteQemu implements QemuHandle {
  readonly exited: Promise<QemuExit>;
  readonly console: ConsoleView;
  private exit: QemuExit | undefined;
  private resolveExit!: (exit: QemuExit) => void;
  private readonly panicListeners = new Set<(verdict: ConsoleVerdict) => void>();

  constructor(
    readonly pid: number | undefined,
    consolePath: string,
    private readonly signal: (signal: NodeJS.Signals) => void,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    const panics = this.panicListeners;
    this.console = {
      path: consolePath,
      onFatal(listener) {
        panics.add(listener);
        return () => panics.delete(listener);
      },
      onLine: () => () => {},
      lastLines: (n = 50) => lastLinesOf(consolePath, n),
      close: async () => {},
    };
  }

  get hasExited(): QemuExit | undefined {
    return this.exit;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exit) this.signal(signal);
  }

  /** The owner says QEMU exited (or the owner itself is gone). */
  exitedWith(exit: QemuExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.resolveExit(exit);
  }

  /** The owner saw a kernel panic on the console. */
  panicked(line: string): void {
    for (const listener of [...this.panicListeners]) listener({ kind: 'panic', line });
  }
}

/** The last n lines of a log file, read from its last TAIL_BYTES (bounded whatever the guest printed). */
function lastLinesOf(path: string, n: number): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = statSync(path).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
