import { describe, expect, it } from 'vitest';
import { parseDiskInfo } from '../../../src/image/disk.js';

describe('disk images and host', () => {
  it('reads qemu-img info and accepts only qcow2 and raw', () => {
    expect(parseDiskInfo('/i', JSON.stringify([{ format: 'qcow2', 'virtual-size': 4294967296 }]))).toEqual({ path: '/i', format: 'qcow2', virtualSize: 4294967296 });
    expect(() => parseDiskInfo('/i', JSON.stringify([{ format: 'vmdk' }]))).toThrowError(expect.objectContaining({ code: 'IMAGE_INVALID', message: expect.stringMatching(/qemu-img convert/) }));
  });
});
