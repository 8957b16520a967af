import { describe, expect, it } from 'vitest';
import { resolveLink, type TreeNode } from '../../../../src/agent/pull/resolve.js';

describe('pull: links resolved physically (pure)', () => {
  /** A tree as a map of paths: a string is a link target, 'dir' / 'file' the others. */
  const tree =
    (entries: Record<string, 'dir' | 'file' | { link: string }>) =>
    (parts: readonly string[]): TreeNode | undefined => {
      if (parts.length === 0) return { type: 'dir' };
      const e = entries[parts.join('/')];
      if (e === undefined) return undefined;
      return typeof e === 'string' ? { type: e } : { type: 'link', target: e.link };
    };
  const t = tree({ l1: { link: '.' }, d: 'dir', 'd/f': 'file', 'd/up': { link: '..' }, 'd/l2': { link: '../l1' }, loopA: { link: 'loopB' }, loopB: { link: 'loopA' }, f: 'file' });

  it('a link to `.` repeated and then climbed resolves where the kernel goes: outside, although it reads as inside', async () => {
    // lexically l1/l1/l1/../../.. is `.`; physically each l1 is the root, so the three `..` climb above it
    expect(await resolveLink([], 'l1/l1/l1/../../..', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside/) });
    expect(await resolveLink([], `${'l1/'.repeat(30)}${'../'.repeat(30)}tmp/victim`, t)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside/) });
    expect(await resolveLink([], 'l1/l1/d/f', t)).toEqual({ ok: true, parts: ['d', 'f'] });
  });

  it('links to links, and `..` after a link, are followed physically', async () => {
    expect(await resolveLink(['d'], 'l2', t)).toEqual({ ok: true, parts: [] }); // d/l2 -> ../l1 -> .
    expect(await resolveLink(['d'], 'up/d/f', t)).toEqual({ ok: true, parts: ['d', 'f'] });
    expect(await resolveLink(['d'], 'up/..', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside/) });
    expect(await resolveLink(['d'], 'l2/..', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside/) }); // lexically d, physically above the root
  });

  it('absolute, dangling, looping and through-a-file targets are refused', async () => {
    expect(await resolveLink([], '/etc/passwd', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/absolute/) });
    expect(await resolveLink([], 'nope', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/dangles/) });
    expect(await resolveLink([], 'loopA', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/too many levels/) });
    expect(await resolveLink([], 'f/x', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/not a directory/) });
    expect(await resolveLink([], '', t)).toMatchObject({ ok: false });
  });

  it('the work is bounded by a budget shared by the pull', async () => {
    const budget = { steps: 3 };
    expect(await resolveLink([], 'l1/l1/l1/l1/d', t, budget)).toMatchObject({ ok: false, reason: expect.stringMatching(/not checked/) });
  });
});
