/**
 * Host memory and CPU under a flooding guest (issue 10, item 2), pure parts: the line splitter, the
 * console, result sniffing and size caps, the frame decoder's work per chunk.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseResultFile } from '../../../src/results/file.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// the worker is a build entry (dist/results/worker.js): `npm test` builds first
const built = existsSync(join(__dirname, '../../../dist/results/worker.js'));

describe.skipIf(!built)('result parsing off the event loop', () => {
  it('parses a result file in the worker', async () => {
    const file = join(dir, 'ok.xml');
    writeFileSync(file, '<?xml version="1.0"?>\n<testsuite name="s"><testcase name="a"/><testcase name="b"><failure message="boom"/></testcase></testsuite>\n');
    expect(await parseResultFile(file, '/out/ok.xml')).toMatchObject([
      { name: 'a', status: 'passed' },
      { name: 'b', status: 'failed', message: 'boom' },
    ]);
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
