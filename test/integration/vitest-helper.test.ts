/**
 * kvmtest/vitest as a user's suite uses it (imported by the package name): a per-file guest
 * fixture, and describe.each over matrix cells with a guest per block.
 */

import { guestTest, matrixCells, useGuest } from 'kvmtest/vitest';
import { describe, expect } from 'vitest';
import { guestDirs } from './helpers.js';

const test = guestTest.override({ guestOptions: { image: 'debian-12', snapshot: true } });
let firstPid: number | undefined;

describe('guestTest', () => {
  test("gives each test the file's guest, booted once", async ({ guest }) => {
    firstPid = guest.pid;
    const result = await guest.exec(['sh', '-c', '. /etc/os-release && echo $VERSION_ID']);
    expect(result.stdout).toBe('12\n');
  });

  test('the same guest in the next test', async ({ guest }) => {
    expect(guest.pid).toBe(firstPid);
    expect(guest.state).toBe('running');
  });
});

describe.each(matrixCells({ images: ['debian-11', 'debian-13'] }))('$id', (cell) => {
  const guest = useGuest(cell.boot);

  test('runs the assertions inside that image', async () => {
    const release = await guest().exec(['sh', '-c', '. /etc/os-release && echo $VERSION_ID']);
    expect(release.stdout.trim()).toBe(cell.image.replace('debian-', ''));
    expect(guestDirs().length).toBeGreaterThanOrEqual(1);
  });
});
