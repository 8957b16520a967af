/**
 * kvmtest shell in a real terminal: `script` gives it a pty (as a person's terminal would), and the
 * test types into it. The guest's shell runs on a pty of its own; keys (Ctrl-C too) reach the
 * guest's foreground process, not kvmtest; the exit status is the shell's; nothing is left behind.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { guestDirs } from './helpers.js';

const cli = join(__dirname, '../../dist/cli/main.js');

describe('kvmtest shell', () => {
  it('opens a terminal in the guest: commands run, Ctrl-C interrupts the guest command, exit status comes back', async () => {
    const child = execa('script', ['-q', '-e', '-c', `node ${cli} shell --image debian-12 --boot kernel --snapshot`, '/dev/null'], {
      env: { CI: 'true', PS1: '$ ' },
      stdin: 'pipe',
      all: true,
      reject: false,
    });
    let seen = '';
    child.all!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
    });
    const until = async (text: string | RegExp, ms = 120_000) => {
      const deadline = Date.now() + ms;
      const found = () => (typeof text === 'string' ? seen.includes(text) : text.test(seen));
      while (!found() && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(found(), seen).toBe(true);
    };
    const type = (keys: string) => child.stdin!.write(keys);
    await until(/debian GNU\/Linux 12|root@|# $/i);
    type('tty; echo "six times seven is $((6*7))"; stty size\r');
    await until('six times seven is 42');
    expect(seen).toMatch(/\/dev\/pts\/\d+/);
    await until(/\b24 80\b/);
    type('sleep 1000\r');
    await new Promise((r) => setTimeout(r, 1000));
    type('\x03');
    type('echo "the shell lives on after $?"\r');
    await until('the shell lives on after 130');
    type('exit 3\r');
    const result = await child;
    expect(result.exitCode, seen).toBe(3);
    expect(guestDirs()).toEqual([]);
  });
});
