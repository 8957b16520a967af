import { describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_BYTES } from '../../../src/util/lines.js';

describe('line splitter', () => {
  it('splits across chunks, drops CR before LF, flushes an unfinished line at the end', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('a\r\nb'))).toEqual(['a']);
    expect(s.push(Buffer.from('c\n\nd'))).toEqual(['bc', '']);
    expect(s.end()).toEqual(['d']);
    expect(s.end()).toEqual([]);
  });

  it('decodes a UTF-8 character split across chunks whole', () => {
    const s = new LineSplitter();
    const bytes = Buffer.from('é€😀\n');
    const lines = [...bytes].flatMap((byte) => s.push(Buffer.from([byte])));
    expect(lines).toEqual(['é€😀']);
  });

  it('caps a huge line: keeps its head, counts the rest, holds at most the cap meanwhile', () => {
    const s = new LineSplitter();
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    let most = 0;
    for (let i = 0; i < 64; i++) {
      expect(s.push(chunk)).toEqual([]);
      most = Math.max(most, s.pendingBytes);
    }
    expect(most).toBe(MAX_LINE_BYTES);
    const [line, next] = s.push(Buffer.from('\nnext\n'));
    expect(line).toBe(`${'x'.repeat(MAX_LINE_BYTES)}…[${64 * 1024 * 1024 - MAX_LINE_BYTES} bytes cut]`);
    expect(next).toBe('next');
  });

  it('does not cut a character in two at the cap', () => {
    const s = new LineSplitter(5);
    expect(s.push(Buffer.from('abcd€€\n'))).toEqual(['abcd…[6 bytes cut]']);
  });
});
