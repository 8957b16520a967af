/**
 * What a qcow2 header says about files outside the image itself. Pure: read before qemu-img opens
 * anything, so a downloaded image naming a host file is refused without that file being touched.
 */

const QCOW2_MAGIC = 0x514649fb; // 'QFI\xfb'
/** Incompatible feature bit 2: the guest's data lives in an external data file. */
const EXTERNAL_DATA_FILE = 1n << 2n;
const EXT_END = 0;
const EXT_DATA_FILE = 0x44415441; // 'DATA'

export interface Qcow2References {
  /** The backing file the header names (its name, as far as the buffer holds it). */
  backingFile?: string;
  /** The external data file the header names; '' when the feature bit is set without a name. */
  dataFile?: string;
}

export function isQcow2(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === QCOW2_MAGIC;
}

/** The outside files a qcow2 header (the first bytes of the file) names; undefined when it is not qcow2. */
export function qcow2References(head: Buffer): Qcow2References | undefined {
  if (!isQcow2(head) || head.length < 72) return undefined;
  const out: Qcow2References = {};
  const version = head.readUInt32BE(4);
  const backingOffset = head.readBigUInt64BE(8);
  const backingSize = head.readUInt32BE(16);
  if (backingOffset !== 0n) out.backingFile = nameAt(head, backingOffset, Math.min(backingSize, 1023));
  if (version < 3 || head.length < 104) return out;
  const incompatible = head.readBigUInt64BE(72);
  let dataFile = (incompatible & EXTERNAL_DATA_FILE) !== 0n ? '' : undefined;
  // header extensions: (type u32, length u32, data padded to 8 bytes), ended by type 0
  for (let at = head.readUInt32BE(100); at + 8 <= head.length; ) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    if (type === EXT_DATA_FILE) dataFile = head.subarray(at + 8, Math.min(head.length, at + 8 + length)).toString('utf8');
    at += 8 + Math.ceil(length / 8) * 8;
  }
  if (dataFile !== undefined) out.dataFile = dataFile;
  return out;
}

function nameAt(head: Buffer, offset: bigint, size: number): string {
  if (offset + BigInt(size) > BigInt(head.length)) return `(a name at byte ${offset})`;
  return head.subarray(Number(offset), Number(offset) + size).toString('utf8');
}

/** Magic numbers of the disk formats qemu-img would guess besides qcow2 and raw. Pure. */
const OTHER_FORMATS: [string, (head: Buffer) => boolean][] = [
  ['qed', (h) => h.subarray(0, 4).toString('latin1') === 'QED\0'],
  ['vmdk', (h) => h.subarray(0, 4).toString('latin1') === 'KDMV' || h.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile'],
  ['vhdx', (h) => h.subarray(0, 8).toString('latin1') === 'vhdxfile'],
  ['vpc', (h) => h.subarray(0, 8).toString('latin1') === 'conectix'],
  ['vdi', (h) => h.length >= 0x44 && h.readUInt32LE(0x40) === 0xbeda107f],
  ['luks', (h) => h.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]))],
];

/** The format of an image nobody declared: qcow2 by its magic, another known format by its, else raw. Pure. */
export function sniffFormat(head: Buffer): string {
  if (isQcow2(head)) return 'qcow2';
  return OTHER_FORMATS.find(([, test]) => test(head))?.[0] ?? 'raw';
}
