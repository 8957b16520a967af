import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  AbortedError,
  AgentError,
  asKvmtestError,
  BootError,
  categoryOf,
  ERROR_CODES,
  GuestCommandError,
  HostError,
  ImageError,
  InputError,
  isKvmtestError,
  KvmtestError,
  kvmtestError,
  MachineError,
  ResultError,
} from '../../src/errors.js';

const CLASSES = { HostError, InputError, ImageError, MachineError, BootError, AgentError, GuestCommandError, ResultError, AbortedError } as const;

describe('errors', () => {
  it('instanceof tells the truth for every class and code', () => {
    for (const code of ERROR_CODES) {
      const error = kvmtestError(code, 'x');
      expect(error).toBeInstanceOf(KvmtestError);
      expect(error).toBeInstanceOf(Error);
      expect(error.code).toBe(code);
      expect(error.category).toBe(categoryOf(code));
      const matching = Object.entries(CLASSES)
        .filter(([, cls]) => error instanceof cls)
        .map(([name]) => name)
        .sort();
      // exactly its own class, plus MachineError for a BootError
      const expected = error.name === 'KvmtestError' ? [] : error.name === 'BootError' ? ['BootError', 'MachineError'] : [error.name];
      expect(matching, code).toEqual(expected.sort());
    }
  });

  it('an InputError is not a BootError (the bug of a hasInstance shared by every subclass)', () => {
    const error = kvmtestError('INVALID_OPTION', 'bad');
    expect(error).toBeInstanceOf(InputError);
    expect(error instanceof BootError).toBe(false);
    expect(error instanceof HostError).toBe(false);
    expect(kvmtestError('BOOT_TIMEOUT', 'slow') instanceof MachineError).toBe(true);
    expect(kvmtestError('QEMU_EXITED', 'gone') instanceof BootError).toBe(false);
  });

  it('instanceof works across two copies of the module (two installs)', async () => {
    vi.resetModules();
    const copy = await import('../../src/errors.js');
    expect(copy.KvmtestError).not.toBe(KvmtestError);
    const foreign = copy.kvmtestError('EXEC_TIMEOUT', 'slow');
    expect(foreign).toBeInstanceOf(GuestCommandError);
    expect(foreign).toBeInstanceOf(KvmtestError);
    expect(foreign instanceof AgentError).toBe(false);
    expect(isKvmtestError(foreign)).toBe(true);
    expect(kvmtestError('EXEC_TIMEOUT', 'x')).toBeInstanceOf(copy.GuestCommandError);
  });

  it('plain values are not kvmtest errors', () => {
    for (const value of [null, undefined, 1, 'x', {}, new Error('x'), Object.assign(new Error('x'), { code: 'BOOT_TIMEOUT' })]) {
      expect(isKvmtestError(value)).toBe(false);
      expect(value instanceof BootError).toBe(false);
    }
  });

  it('keeps cause and consoleTail, and wraps foreign errors as INTERNAL', () => {
    const cause = new Error('root');
    const error = kvmtestError('KERNEL_PANIC', 'panic', { cause, consoleTail: 'tail' });
    expect(error.cause).toBe(cause);
    expect(error.consoleTail).toBe('tail');
    expect(error.name).toBe('MachineError');
    expect(asKvmtestError(error)).toBe(error);
    const wrapped = asKvmtestError(new TypeError('oops'));
    expect(wrapped).toMatchObject({ code: 'INTERNAL', category: 'internal', message: 'oops' });
  });

  it('src/ makes errors only through kvmtestError (the class follows from the code)', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts') && !path.endsWith('errors.ts')) {
          const text = readFileSync(path, 'utf8');
          if (/new (KvmtestError|[A-Z][A-Za-z]*Error)\(|throw new TypeError|throw new Error\(/.test(text)) offenders.push(path);
        }
      }
    };
    walk(join(import.meta.dirname, '../../src'));
    expect(offenders).toEqual([]);
  });
});
