import { describe, expect, it } from 'vitest';
import { onInterrupt } from '../../../src/cli/interrupt.js';

describe('onInterrupt', () => {
  it('aborts on SIGINT or SIGTERM while held, and stops listening when disposed', () => {
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    {
      using interrupt = onInterrupt();
      expect(process.listenerCount('SIGINT')).toBe(before.int + 1);
      expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
      expect(interrupt.signal.aborted).toBe(false);
      // the listener it added, called directly: emitting a real signal would reach the test runner's own
      (process.listeners('SIGTERM').at(-1) as () => void)();
      expect(interrupt.signal.aborted).toBe(true);
      expect((interrupt.signal.reason as Error).message).toBe('interrupted');
    }
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
  });
});
