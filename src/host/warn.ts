import { sanitizeLine } from '../util/sanitize.js';

const warned = new Set<string>();

/** Prints a one-line warning once per process (sanitized: it may quote QEMU or the guest). */
export function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`${sanitizeLine(message, 2000)}\n`);
}
