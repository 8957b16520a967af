/**
 * kvmtest/vitest's freshGuestTest: every test gets its own clean guest (a restore of the file's
 * starting point), disposed after the test even when it throws; a pool restores the next one while
 * a test runs. With guestPrepare, the starting point is a checkpoint taken after the file's own setup.
 */
import { freshGuestTest } from 'kvmtest/vitest';
import { describe, expect } from 'vitest';

const test = freshGuestTest.override({ guestOptions: { image: 'debian-12', boot: 'kernel', snapshot: true } });
const seen = new Set<number | undefined>();

describe('freshGuestTest: a clean guest per test', () => {
  for (const n of [1, 2, 3]) {
    test(`test ${n} writes /root/mark, which no earlier test's guest left behind`, async ({ guest }) => {
      const before = await guest.exec(['sh', '-c', 'cat /root/mark 2>/dev/null || echo absent']);
      expect(before.stdout).toBe('absent\n');
      await guest.exec(['sh', '-c', `echo test-${n} > /root/mark && sync`]);
      expect(seen.has(guest.pid)).toBe(false);
      seen.add(guest.pid);
    });
  }
});

const prepared = freshGuestTest.override({
  guestOptions: { image: 'debian-12', boot: 'kernel', snapshot: true },
  guestPrepare: {
    // the file's own setup, in JavaScript: run once, checkpointed, every test starts after it
    run: async (guest) => {
      await guest.exec(['sh', '-c', 'echo prepared > /root/prepared; setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > /root/daemon; sync']);
    },
  },
});

describe('freshGuestTest with guestPrepare: clones of a checkpoint taken after the file setup', () => {
  for (const n of [1, 2]) {
    prepared(`test ${n} starts after the setup, with its background process, and alone`, async ({ guest }) => {
      const r = await guest.exec(['sh', '-c', 'cat /root/prepared; kill -0 "$(cat /root/daemon)" && echo daemon-alive; cat /root/mark 2>/dev/null || echo absent']);
      expect(r.stdout).toBe('prepared\ndaemon-alive\nabsent\n');
      await guest.exec(['sh', '-c', 'echo dirty > /root/mark && sync']);
    });
  }
});
