/**
 * Host memory and CPU under a flooding guest (issue 10, item 2), pure parts: the line splitter, the
 * console, result sniffing and size caps, the frame decoder's work per chunk.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { encodeFrame, FrameDecoder } from '../../../src/agent/codec.js';
import { ConsoleLog } from '../../../src/qemu/console.js';
import { parseResultFile } from '../../../src/results/file.js';
import { MAX_RESULT_FILE_BYTES, parseResults, sniffResults } from '../../../src/results/parse.js';
import { LineSplitter, MAX_LINE_BYTES } from '../../../src/util/lines.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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

describe('console under a flood', () => {
  it('32 MiB without a newline: each chunk is scanned once, the partial line and the tail stay bounded', async () => {
    const log = new ConsoleLog(join(dir, 'flood.log'), 50, { headBytes: 1024 * 1024, tailBytes: 256 * 1024 });
    const fatal: string[] = [];
    log.onFatal((v) => fatal.push(v.kind));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    // the work per chunk is bounded by what it holds: at most one capped partial line, never the whole flood
    let most = 0;
    for (let i = 0; i < 512; i++) {
      log.write(chunk);
      most = Math.max(most, log.pendingBytes);
    }
    expect(most).toBe(MAX_LINE_BYTES);
    expect(log.pendingBytes).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(log.lastLines().length).toBeLessThanOrEqual(5000);
    log.write(Buffer.from('\n[    9.1] Kernel panic - not syncing: after the flood\nkvm login: '));
    expect(fatal).toEqual(['panic', 'no-cloud-init']);
    expect(log.lastLines(3)).toMatch(/bytes cut\]\n\[    9.1\] Kernel panic/);
    expect(log.droppedBytes).toBeGreaterThan(30 * 1024 * 1024);
    await log.close();
    const text = readFileSync(join(dir, 'flood.log'), 'utf8');
    expect(statSync(join(dir, 'flood.log')).size).toBeLessThan(1024 * 1024 + 256 * 1024 + 1000);
    expect(text).toMatch(/\n\[kvmtest: \d+ bytes of console output dropped here/);
    expect(text.endsWith('after the flood\nkvm login: ')).toBe(true);
  });

  it('tiny chunks: console.log holds exactly the head, a marker and the last bytes', async () => {
    const path = join(dir, 'tiny.log');
    const log = new ConsoleLog(path, 50, { headBytes: 1000, tailBytes: 777 });
    const all = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i % 10 === 9 ? '\n' : ''}${i}`).join(''));
    for (let at = 0; at < all.length; at += 13) log.write(all.subarray(at, at + 13));
    await log.close();
    const text = readFileSync(path, 'latin1');
    const marker = `\n[kvmtest: ${all.length - 1777} bytes of console output dropped here: the log keeps the first 1000 and the last 777 bytes]\n`;
    expect(text).toBe(all.subarray(0, 1000).toString('latin1') + marker + all.subarray(-777).toString('latin1'));
  });

  it('decodes UTF-8 split across chunks and still sees a login prompt without a newline', () => {
    const log = new ConsoleLog(join(dir, 'utf8.log'));
    const seen: string[] = [];
    log.onFatal((v) => seen.push(v.kind));
    const bytes = Buffer.from('Début ✓\r\nhôte login: ');
    for (const byte of bytes) log.write(Buffer.from([byte]));
    expect(log.lastLines()).toBe('Début ✓\nhôte login: ');
    expect(seen).toEqual(['no-cloud-init']);
    void log.close();
  });
});

describe('result sniffing and caps', () => {
  it('302 bytes of processing instructions: sniffed in linear time, not a result file', () => {
    const hostile = `${'<?a?>'.repeat(60)}x\n`;
    expect(hostile.length).toBeGreaterThanOrEqual(302);
    expect(sniffResults(hostile)).toBeUndefined();
    expect(parseResults(hostile, 'pi.xml')).toBeUndefined();
    // and a megabyte of them, unterminated: still one pass
    expect(sniffResults(`${'<?a?> <!-- c -->'.repeat(70_000)}<?x`)).toBeUndefined();
  });

  it('still finds the root after a declaration, comments and a doctype', () => {
    expect(sniffResults('\uFEFF<?xml version="1.0"?>\n<!-- made by x -->\n<!DOCTYPE testsuites>\n<testsuites>')).toBe('junit');
    expect(sniffResults('<?xml version="1.0"?><html>')).toBeUndefined();
    expect(sniffResults('TAP version 13\n1..1\nok 1\n')).toBe('tap');
    expect(sniffResults('just a log\n')).toBeUndefined();
  });

  it('a 50 MiB result file is refused with RESULT_TOO_LARGE; a 50 MiB log is skipped unread', async () => {
    const big = join(dir, 'big.xml');
    writeFileSync(big, Buffer.concat([Buffer.from('<?xml version="1.0"?>\n<testsuites>\n'), Buffer.alloc(50 * 1024 * 1024, ' ')]));
    expect(50 * 1024 * 1024).toBeGreaterThan(MAX_RESULT_FILE_BYTES);
    await expect(parseResultFile(big, '/out/big.xml')).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    writeFileSync(big, Buffer.alloc(50 * 1024 * 1024, 'x'));
    await expect(parseResultFile(big, '/out/big.log')).resolves.toBeUndefined();
    rmSync(big);
  });

  it('caps the cases of one file and the length of their messages', async () => {
    const lines = ['TAP version 13', '1..150000'];
    for (let i = 1; i <= 150_000; i++) lines.push(`not ok ${i} t${i}`);
    lines.push(`not ok 150001 ${'m'.repeat(10_000)}`);
    const cases = parseResults(`${lines.join('\n')}\n`, 'many.tap')!;
    expect(cases).toHaveLength(100_001);
    expect(cases.at(-1)).toMatchObject({ status: 'error', name: '50001 more cases not read' });
    const long = parseResults(`TAP version 13\nnot ok 1 ${'n'.repeat(10_000)}\n`, 'long.tap')!;
    expect(long[0]!.name.length).toBeLessThan(2100);
  });
});

// the worker is a build entry (dist/results/worker.js): `npm test` builds first
const built = existsSync(join(__dirname, '../../../dist/results/worker.js'));

describe.skipIf(!built)('result parsing off the event loop', () => {
  it('parses a result file in the worker', async () => {
    const file = join(dir, 'ok.xml');
    writeFileSync(file, '<?xml version="1.0"?>\n<testsuite name="s"><testcase name="a"/><testcase name="b"><failure message="boom"/></testcase></testsuite>\n');
    expect(await parseResultFile(file, '/out/ok.xml')).toMatchObject([{ name: 'a', status: 'passed' }, { name: 'b', status: 'failed', message: 'boom' }]);
  });

  it('a file that takes too long to parse is stopped with RESULT_PARSE_FAILED while the event loop keeps turning', async () => {
    // 2000 nested subtests: seconds of tap-parser work for a few MiB
    let text = 'TAP version 13\n';
    for (let i = 0, indent = ''; i < 2000; i++, indent += '    ') text += `${indent}# Subtest: s\n`;
    const file = join(dir, 'deep.tap');
    writeFileSync(file, `${text}${' '.repeat(8000)}ok 1\n`);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      await expect(parseResultFile(file, '/out/deep.tap', { timeoutMs: 500 })).rejects.toMatchObject({ code: 'RESULT_PARSE_FAILED', message: expect.stringMatching(/longer than/) });
    } finally {
      clearInterval(ticker);
    }
    expect(ticks).toBeGreaterThan(5);
  });

  it('a file that needs too much memory to parse fails with RESULT_PARSE_FAILED, not a bigger host', async () => {
    const file = join(dir, 'pis.xml');
    writeFileSync(file, `<testsuites>${'<?a?>'.repeat(3_300_000)}</testsuites>`);
    await expect(parseResultFile(file, '/out/pis.xml', { heapMb: 48 })).rejects.toMatchObject({ code: 'RESULT_PARSE_FAILED', message: expect.stringMatching(/more than 48 MB/) });
  });
});

describe('frame decoder work per chunk', () => {
  it('parses the header of a large frame once, not once per chunk of its body', () => {
    const frame = encodeFrame({ t: 'stdout', id: 1 }, Buffer.alloc(1024 * 1024, 7));
    const decoder = new FrameDecoder<{ t: string; id: number }>();
    decoder.synced = true;
    const parse = vi.spyOn(JSON, 'parse');
    const frames = [];
    try {
      for (let at = 0; at < frame.length; at += 1024) frames.push(...decoder.push(frame.subarray(at, at + 1024)));
      expect(parse.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      parse.mockRestore();
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]!.body.length).toBe(1024 * 1024);
  });
});
