/**
 * Telling result files from other files, and their caps under a flooding guest (issue 10, item 2):
 * sniffing in linear time, size and case limits. The line splitter, console and frame decoder parts
 * of that work live with their modules (util/lines, qemu/console, agent/codec).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseResultFile } from '../../../src/results/file.js';
import { MAX_RESULT_FILE_BYTES, parseResults, sniffResults } from '../../../src/results/parse.js';
import { resultFile } from '../fixtures/result-files.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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

describe('result files that amplify (issue 22)', () => {
  it('2 MB of JUnit (two nested 1,000-character suites, 100,000 cases, a long path): one suite string and one file string for all', () => {
    const xml = `<testsuites><testsuite name="${'a'.repeat(1000)}"><testsuite name="${'b'.repeat(1000)}">${'<testcase name="t"/>'.repeat(100_000)}</testsuite></testsuite></testsuites>`;
    const before = process.memoryUsage().heapUsed;
    const cases = parseResults(xml, `/work/${'p'.repeat(5000)}/junit.xml`)!;
    const grown = process.memoryUsage().heapUsed - before;
    expect(cases).toHaveLength(100_000);
    expect(cases[0]!.suite).toHaveLength(2001);
    expect(cases[0]!.file).toHaveLength(2001);
    // measured: ~35 MiB with the strings shared, ~222 MiB with a joined suite per case
    expect(grown).toBeLessThan(120 * 2 ** 20);
  });
});

describe('parseResults', () => {
  it('tells JUnit XML from TAP by content', () => {
    expect(parseResults(resultFile('node-junit.xml'), 'a')).toHaveLength(7);
    expect(parseResults(resultFile('pytest-junit.xml'), 'a')).toHaveLength(6);
    expect(parseResults(resultFile('node-tap.tap'), 'a')).toHaveLength(8);
    expect(parseResults(resultFile('node-tap-v14.tap'), 'a')).toHaveLength(7);
    expect(parseResults(resultFile('shell.tap'), 'a')).toHaveLength(2);
    expect(parseResults('\n  <testsuite name="s"><testcase name="t"/></testsuite>', 'a')).toHaveLength(1);
  });

  it('returns undefined for files that are not results: a log, other XML, source code', () => {
    expect(parseResults(resultFile('plain.log'), 'console.log')).toBeUndefined();
    expect(parseResults('<?xml version="1.0"?><project><modelVersion>4.0.0</modelVersion></project>', 'pom.xml')).toBeUndefined();
    expect(parseResults(resultFile('pytest_sample.py'), 'test.py')).toBeUndefined();
    expect(parseResults('', 'empty')).toBeUndefined();
  });

  it('still throws for a result file that does not parse', () => {
    expect(() => parseResults(resultFile('malformed.xml'), 'junit.xml')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
  });
});
