/** Reading a qcow2 header before qemu-img opens anything: the host files it names, and the format of an image nobody declared. */
import { describe, expect, it } from 'vitest';
import { qcow2References, sniffFormat } from '../../../src/image/qcow2-header.js';
import { useHostileImages } from '../fixtures/hostile-images.js';

const images = useHostileImages();
const { files } = images;

describe('qcow2 headers, read before qemu-img opens anything', () => {
  it('names the backing file and the external data file; not qcow2 → undefined', () => {
    expect(qcow2References(files.get('/evil-backing.qcow2')!)).toEqual({ backingFile: '/etc/passwd' });
    expect(qcow2References(files.get('/evil-data.qcow2')!)).toEqual({ dataFile: images.secret });
    expect(qcow2References(files.get('/clean.qcow2')!)).toEqual({});
    expect(qcow2References(Buffer.alloc(512))).toBeUndefined();
  });

  it('a format nobody declared: qcow2 by its magic, other formats qemu-img would guess by theirs, else raw', () => {
    expect(sniffFormat(files.get('/clean.qcow2')!)).toBe('qcow2');
    expect(sniffFormat(Buffer.from('KDMV\x01\x00\x00\x00', 'latin1'))).toBe('vmdk');
    expect(sniffFormat(Buffer.from('# Disk DescriptorFile\nRW 1 FLAT "/etc/shadow" 0\n'))).toBe('vmdk');
    expect(sniffFormat(Buffer.alloc(4096))).toBe('raw');
  });
});
