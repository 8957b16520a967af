import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRoot, checkTarget } from '../../../src/reaper/guard.js';
import { temp, useTempRoots } from '../fixtures/temp-roots.js';

const { makeRoot, rootWithLink } = useTempRoots();

describe('reaper: what it may delete', () => {
  it('a temp root must be a real directory owned by this user (or root), not writable by others unless sticky', () => {
    const root = makeRoot();
    expect(checkRoot(root)).toEqual({ root });
    expect(checkRoot(tmpdir())).toEqual({ root: temp });
    expect(checkRoot('relative/dir')).toMatchObject({ refused: expect.stringMatching(/absolute/) });
    expect(checkRoot('/')).toMatchObject({ refused: expect.stringMatching(/not a temp directory/) });
    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    expect(checkRoot(open)).toMatchObject({ refused: expect.stringMatching(/writable by others/) });
  });

  // pure checks only: no test hands a real system path to code that deletes
  it('refuses /etc, a path outside the roots, a symlink to outside; accepts a real child', () => {
    const { root, victim, link, good } = rootWithLink();
    const t = (dir: string) => ({ name: 'kvmtest-1', dir });
    expect(checkTarget(t('/etc'), [root])).toMatch(/not a kvmtest directory/);
    expect(checkTarget(t(victim), [root])).toMatch(/not directly inside a registered temp root/);
    expect(checkTarget(t(link), [root])).toMatch(/not a directory/);
    expect(checkTarget(t(join(link, '.')), [root])).toBeDefined();
    expect(checkTarget(t(join(good, 'kvmtest-deeper')), [root])).toBeDefined();
    expect(checkTarget({ name: 'sshd', dir: good }, [root])).toMatch(/not a kvmtest guest/);
    expect(checkTarget(t(good), [])).toMatch(/not directly inside/);
    expect(checkTarget(t(good), [root])).toBeUndefined();
  });

  it.runIf(process.getuid?.() === 0)('refuses a dir owned by another uid', () => {
    const root = makeRoot();
    const theirs = join(root, 'kvmtest-theirs');
    mkdirSync(theirs);
    chownSync(theirs, 65534, 65534);
    expect(checkTarget({ name: 'kvmtest-1', dir: theirs }, [root])).toMatch(/owned by uid 65534/);
  });
});
