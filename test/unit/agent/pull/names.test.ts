import { describe, expect, it } from 'vitest';
import { clampMode, memberKind, memberPath } from '../../../../src/agent/pull/names.js';

// ---------------------------------------------------------------- pure rules

describe('pull: names and modes (pure)', () => {
  it('a member name is relative components, or the archive is refused', () => {
    expect(memberPath('./a//b/')).toEqual({ ok: true, parts: ['a', 'b'] });
    expect(memberPath('.')).toEqual({ ok: true, parts: [] });
    expect(memberPath('/etc/passwd')).toMatchObject({ ok: false, reason: expect.stringMatching(/absolute/) });
    expect(memberPath('a/../../x')).toMatchObject({ ok: false, reason: expect.stringMatching(/\.\./) });
    expect(memberPath('a\0b')).toMatchObject({ ok: false, reason: expect.stringMatching(/NUL/) });
    expect(memberPath('x'.repeat(5000))).toMatchObject({ ok: false });
  });

  it('modes lose setuid, setgid, sticky and group/world write; directories keep the owner rwx', () => {
    expect(clampMode(0o6755, 'file')).toBe(0o755);
    expect(clampMode(0o4777, 'file')).toBe(0o755);
    expect(clampMode(0o666, 'file')).toBe(0o644);
    expect(clampMode(0o600, 'file')).toBe(0o600);
    expect(clampMode(undefined, 'file')).toBe(0o644);
    expect(clampMode(0o1777, 'dir')).toBe(0o755);
    expect(clampMode(0o2775, 'dir')).toBe(0o755);
    expect(clampMode(0o555, 'dir')).toBe(0o755);
    expect(clampMode(0o700, 'dir')).toBe(0o700);
  });

  it('special files are never made', () => {
    expect(memberKind('FIFO')).toEqual({ drop: 'fifo' });
    expect(memberKind('CharacterDevice')).toEqual({ drop: 'device node' });
    expect(memberKind('BlockDevice')).toEqual({ drop: 'device node' });
    expect(memberKind('File')).toBe('file');
    expect(memberKind('SymbolicLink')).toBe('symlink');
  });
});
