import createDebug from 'debug';
import { execa, type ResultPromise } from 'execa';
import { LineSplitter } from '../util/lines.js';
import { TailBuffer } from '../util/tail.js';
import { ConsoleLog } from './console.js';

const debug = createDebug('kvmtest:qemu');

export interface QemuExit {
  code: number | null;
  signal: string | null;
  /** QEMU's own stderr (its error messages), trimmed. */
  stderr: string;
}

/** What a machine sees of its serial console. */
export type ConsoleView = Pick<ConsoleLog, 'path' | 'onFatal' | 'onLine' | 'lastLines' | 'close'>;

/**
 * What a Machine needs of its QEMU: its pid, its exit, a signal, its console. A QemuProcess (a
 * child of this process) is one; a QEMU another process runs and lends (pool/remote-qemu.ts) is another.
 */
export interface QemuHandle {
  readonly pid: number | undefined;
  readonly exited: Promise<QemuExit>;
  readonly hasExited: QemuExit | undefined;
  readonly console: ConsoleView;
  kill(signal?: NodeJS.Signals): void;
}

/** A running QEMU: its console, its exit, and a hard kill. */
export class QemuProcess implements QemuHandle {
  readonly exited: Promise<QemuExit>;
  // QEMU's last stderr lines, for the exit's message; bounded whatever QEMU prints
  private readonly stderrLines = new LineSplitter();
  private readonly stderrTail = new TailBuffer(100, 8192);
  private exit: QemuExit | undefined;

  private constructor(
    private readonly child: ResultPromise,
    readonly console: ConsoleLog,
  ) {
    child.stderr?.on('data', (chunk: Buffer) => {
      for (const line of this.stderrLines.push(chunk)) this.stderrTail.push(line);
    });
    console.attach(child.stdout!);
    this.exited = child.then((result) => {
      this.exit = { code: result.exitCode ?? null, signal: result.signal ?? null, stderr: this.stderrText() };
      debug('pid %d exited: %o', child.pid, this.exit);
      return this.exit;
    });
  }

  /**
   * Starts QEMU with the given argv; stdout is the serial console, logged to consolePath. With
   * `setpriv`, QEMU gets SIGKILL the moment this process dies, however it dies (PR_SET_PDEATHSIG).
   * `fd3`, an open file descriptor, is QEMU's fd 3 (an incoming state: see INCOMING_STATE_FD).
   */
  static start(binary: string, args: string[], consolePath: string, setpriv?: string, fd3?: number): QemuProcess {
    debug('%s %s', binary, args.join(' '));
    const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, args];
    const child = execa(file, argv, {
      // execa's types list only fds 3..9, but any open fd of ours is passed to spawn() as is
      stdio: ['ignore', 'pipe', 'pipe', ...(fd3 === undefined ? [] : [fd3 as 3])],
      buffer: false,
      reject: false,
      // execa kills QEMU when this process exits normally; signals are handled by the guest registry
      cleanup: true,
      // SIGKILL of the host process: the parent-death signal ends QEMU, the reaper removes its files
      detached: false,
    });
    return new QemuProcess(child, new ConsoleLog(consolePath));
  }

  /** The kept stderr lines, an unfinished last one included, trimmed. */
  private stderrText(): string {
    for (const line of this.stderrLines.end()) this.stderrTail.push(line);
    return this.stderrTail.toString().trim();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get hasExited(): QemuExit | undefined {
    return this.exit;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** Kills QEMU at once, waits for it to be reaped, and closes its console log. Safe to repeat. */
  async destroy(): Promise<void> {
    this.kill('SIGKILL');
    await this.exited;
    await this.console.close();
  }
}
