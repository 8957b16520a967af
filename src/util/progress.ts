import { sanitizeLine } from './sanitize.js';

/**
 * Progress for long operations: on a terminal one live line (spinner, elapsed time, latest detail);
 * elsewhere (CI logs) plain lines, at most one every `plainEveryMs` unless the phase changes.
 */
export interface Progress {
  update(detail: string): void;
  phase(name: string): void;
  done(summary: string): void;
  fail(summary: string): void;
}

export function createProgress(rawLabel: string, stream: NodeJS.WriteStream = process.stderr, plainEveryMs = 10_000): Progress {
  // a label may name what a capsule or a config gave (an image name): one sanitized line too
  const label = sanitizeLine(rawLabel, 200);
  const start = Date.now();
  const tty = stream.isTTY === true && !process.env.CI;
  const elapsed = () => `${((Date.now() - start) / 1000).toFixed(0)}s`;
  let phase = '';
  let detail = '';
  let lastPlain = 0;
  let frame = 0;
  const spinner = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
  const draw = () => {
    const width = stream.columns ?? 100;
    const text = `${spinner[frame++ % spinner.length]} ${label} ${phase} ${elapsed()}${detail ? ` · ${detail}` : ''}`;
    stream.write(`\r\x1b[2K${text.slice(0, width - 1)}`);
  };
  const timer = tty ? setInterval(draw, 120) : undefined;
  timer?.unref();
  const plain = (force: boolean) => {
    if (!force && Date.now() - lastPlain < plainEveryMs) return;
    lastPlain = Date.now();
    stream.write(`${label} ${phase} ${elapsed()}${detail ? `: ${detail}` : ''}\n`);
  };
  const finish = (mark: string, summary: string) => {
    if (timer) clearInterval(timer);
    stream.write(`${tty ? '\r\x1b[2K' : ''}${mark} ${label} ${summary} (${elapsed()})\n`);
  };
  // details are often guest text (console lines, the hello's OS name and kernel): one sanitized line each
  return {
    update(text) {
      detail = sanitizeLine(text);
      if (!tty) plain(false);
    },
    phase(name) {
      phase = sanitizeLine(name);
      if (!tty) plain(true);
    },
    done: (summary) => finish('✔', sanitizeLine(summary, 1000)),
    fail: (summary) => finish('✖', sanitizeLine(summary, 1000)),
  };
}

/** A Progress that shows nothing. */
export const silentProgress: Progress = { update() {}, phase() {}, done() {}, fail() {} };

/** '123 MiB of 456 MiB (27%)', or '123 MiB' without a total. Pure. */
export function formatTransfer(received: number, total?: number): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 1 : 0)} MiB`;
  if (!total) return mib(received);
  return `${mib(received)} of ${mib(total)} (${Math.floor((received / total) * 100)}%)`;
}
