import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Header, Pax } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeExtractor } from '../../../../src/agent/pull/extract.js';

// ---------------------------------------------------------------- crafted archives

interface Member {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice' | 'BlockDevice';
  mode?: number;
  body?: Buffer | string;
  /** Declared size, when it differs from the body (a header promising more than follows). */
  size?: number;
  linkpath?: string;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** One member as tar blocks: a pax header first when a name does not fit ustar. */
function memberBlocks(m: Member): Buffer[] {
  const body = Buffer.from(m.body ?? '');
  const fields = {
    path: m.path,
    mode: m.mode ?? (m.type === 'Directory' ? 0o755 : 0o644),
    size: m.size ?? body.length,
    type: m.type ?? 'File',
    linkpath: m.linkpath,
    mtime: new Date(1_700_000_000_000),
    uid: 0,
    gid: 0,
  };
  const blocks: Buffer[] = [];
  if (Buffer.byteLength(m.path) > 99 || Buffer.byteLength(m.linkpath ?? '') > 99) blocks.push(new Pax(fields).encode());
  const header = Buffer.alloc(512);
  new Header({ ...fields, path: m.path.slice(0, 99), linkpath: m.linkpath?.slice(0, 99) }).encode(header, 0);
  blocks.push(header);
  if (m.size === undefined || m.size === body.length) blocks.push(body, pad(body.length));
  else blocks.push(body);
  return blocks;
}

function tarOf(members: Member[], { end = true } = {}): Buffer {
  return Buffer.concat([...members.flatMap(memberBlocks), ...(end ? [Buffer.alloc(1024)] : [])]);
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-unit-pull-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A fresh parent directory per test; `dest` inside it does not exist yet. */
function place(): { parent: string; dest: string } {
  const parent = join(work, `t${++n}`);
  mkdirSync(parent);
  return { parent, dest: join(parent, 'dest') };
}

describe('pull: backpressure', () => {
  it('the extractor takes the next chunk only when the last is on its way to disk', async () => {
    const { parent } = place();
    const root = join(parent, 'root');
    mkdirSync(root);
    const extractor = new TreeExtractor(root, join(parent, 'links'), 'dir');
    const stream = tarOf([{ path: 'big', body: Buffer.alloc(64 * 1024 * 1024, 1) }]);
    let maxAhead = 0;
    let refusedOnce = false;
    for (let at = 0; at < stream.length; at += 256 * 1024) {
      if (!extractor.write(stream.subarray(at, at + 256 * 1024))) {
        refusedOnce = true;
        await new Promise((resolve) => extractor.once('drain', resolve));
      }
      maxAhead = Math.max(maxAhead, Math.min(at + 256 * 1024, stream.length) - extractor.result.written);
    }
    await new Promise<void>((resolve) => extractor.end(resolve));
    expect(statSync(join(root, 'big')).size).toBe(64 * 1024 * 1024);
    expect(refusedOnce).toBe(true);
    expect(maxAhead).toBeLessThan(4 * 1024 * 1024);
  });
});
