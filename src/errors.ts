/**
 * Every error kvmtest throws on purpose: a stable `code`, a `category` that follows from the code,
 * a message that says what to do, the original as `cause`.
 *
 * One table maps each code to its category, and the category to its class: `kvmtestError(code, …)`
 * is the one way src/ makes an error, so a code can never travel under the wrong class. Each class
 * brands its own prototype, so `instanceof` tells the truth (an InputError is not a BootError) and
 * still works across two installed copies of kvmtest.
 */
const CODES = {
  // the host lacks something kvmtest needs, or a host file operation failed
  QEMU_NOT_FOUND: 'host',
  QEMU_IMG_NOT_FOUND: 'host',
  ISO_TOOL_NOT_FOUND: 'host',
  KVM_UNUSABLE: 'host',
  NODE_UNSUPPORTED: 'host',
  HOST_IO: 'host',
  CACHE_UNSAFE: 'host',
  UNSUPPORTED_ARCH: 'host',
  FIRMWARE_NOT_FOUND: 'host',
  CAPSULE_INCOMPATIBLE: 'host',
  // something the user gave is wrong: options, config, paths, images, reports to merge
  INVALID_OPTION: 'input',
  CONFIG_INVALID: 'input',
  IMAGE_NOT_FOUND: 'input',
  IMAGE_INVALID: 'input',
  IMAGE_UNKNOWN: 'input',
  CLOUD_CONFIG_INVALID: 'input',
  LOCAL_PATH_NOT_FOUND: 'input',
  REPORT_INVALID: 'input',
  SHARD_MISSING: 'input',
  PULL_DEST_SYMLINK: 'input',
  PULL_DEST_NOT_EMPTY: 'input',
  GUEST_NOT_READY: 'input',
  CAPSULE_DAMAGED: 'input',
  CAPSULE_BASE_MISSING: 'input',
  // getting an image: download, verification, build
  DOWNLOAD_FAILED: 'image',
  DOWNLOAD_NOT_FOUND: 'image',
  DOWNLOAD_TIMEOUT: 'image',
  DOWNLOAD_INSECURE: 'image',
  CHECKSUM_MISMATCH: 'image',
  SIGNATURE_INVALID: 'image',
  NO_CLOUD_INIT: 'image',
  IMAGE_BUILD_FAILED: 'image',
  // the guest did not come up
  BOOT_TIMEOUT: 'boot',
  NOT_BOOTABLE: 'boot',
  // the machine failed, during boot or after it
  QEMU_EXITED: 'machine',
  KERNEL_PANIC: 'machine',
  QMP_ERROR: 'machine',
  SNAPSHOT_FAILED: 'machine',
  CAPSULE_FAILED: 'machine',
  SETUP_FAILED: 'command',
  // the agent link failed
  AGENT_DISCONNECTED: 'agent',
  AGENT_PROTOCOL: 'agent',
  GUEST_DISPOSED: 'agent',
  // a command, push or pull inside the guest failed
  EXEC_TIMEOUT: 'command',
  COMMAND_NOT_FOUND: 'command',
  GUEST_IO: 'command',
  UNSAFE_ARCHIVE: 'command',
  OUTPUT_LIMIT: 'command',
  PULL_TOO_LARGE: 'command',
  PULL_TOO_MANY_ENTRIES: 'command',
  TRANSFER_TIMEOUT: 'command',
  // a cell's results could not be judged
  CELL_TIMEOUT: 'result',
  RESULT_PARSE_FAILED: 'result',
  RESULT_TOO_LARGE: 'result',
  // the caller's AbortSignal fired
  ABORTED: 'aborted',
  // a bug in kvmtest (an error that is none of the above, met where one is reported)
  INTERNAL: 'internal',
} as const satisfies Record<string, string>;

export type ErrorCode = keyof typeof CODES;
export type ErrorCategory = (typeof CODES)[ErrorCode];
/** The codes of one category. */
export type CodeOf<C extends ErrorCategory> = { [K in ErrorCode]: (typeof CODES)[K] extends C ? K : never }[ErrorCode];

export interface ErrorOptions {
  cause?: unknown;
  /** Last lines of the guest's serial console, when the guest's state explains the error. */
  consoleTail?: string;
}

const BRANDS = Symbol.for('kvmtest.error.brands');

export class KvmtestError extends Error {
  /** The brand `instanceof` looks for; each class sets its own. */
  static readonly brand: string = 'KvmtestError';
  readonly code: ErrorCode;
  readonly category: ErrorCategory;
  /** Last lines of the guest's serial console, when the guest's state explains the error. */
  consoleTail?: string;

  /** Use `kvmtestError(code, …)`: it picks the class that matches the code. */
  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.category = CODES[code] ?? 'internal';
    if (options.consoleTail !== undefined) this.consoleTail = options.consoleTail;
  }

  /** True when `value` was made by this class or a subclass, in this copy of kvmtest or another. */
  static [Symbol.hasInstance](this: { brand: string }, value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    const brands = (value as Record<symbol, unknown>)[BRANDS];
    return Array.isArray(brands) && brands.includes(this.brand);
  }

  /** The brands of this error's class and its ancestors, read by `instanceof`. */
  get [BRANDS](): string[] {
    const brands: string[] = [];
    for (let c = this.constructor as { brand?: string } | null; c && c !== Error; c = Object.getPrototypeOf(c)) {
      if (Object.hasOwn(c, 'brand') && c.brand) brands.push(c.brand);
    }
    return brands;
  }
}

/** The host lacks something kvmtest needs (QEMU, an ISO tool, usable KVM, a safe cache), or a host file operation failed. */
export class HostError extends KvmtestError {
  static override readonly brand: string = 'HostError';
}
/** An option, config, path, image or report given by the user is wrong. */
export class InputError extends KvmtestError {
  static override readonly brand: string = 'InputError';
}
/** An image could not be downloaded, verified or built. */
export class ImageError extends KvmtestError {
  static override readonly brand: string = 'ImageError';
}
/** The machine failed: QEMU exited, the kernel panicked, QMP or a snapshot failed (during boot or after). */
export class MachineError extends KvmtestError {
  static override readonly brand: string = 'MachineError';
}
/** The guest did not come up: boot timeout, nothing bootable. Also a MachineError. */
export class BootError extends MachineError {
  static override readonly brand: string = 'BootError';
}
/** The agent link failed: disconnect, protocol violation, guest disposed. */
export class AgentError extends KvmtestError {
  static override readonly brand: string = 'AgentError';
}
/** A command, push or pull inside the guest failed. */
export class GuestCommandError extends KvmtestError {
  static override readonly brand: string = 'GuestCommandError';
}
/** A cell's results could not be judged (timeout, unparsable or oversized result files). */
export class ResultError extends KvmtestError {
  static override readonly brand: string = 'ResultError';
}
/** The caller's AbortSignal fired. */
export class AbortedError extends KvmtestError {
  static override readonly brand: string = 'AbortedError';
}

const CLASSES: Record<ErrorCategory, new (code: ErrorCode, message: string, options?: ErrorOptions) => KvmtestError> = {
  host: HostError,
  input: InputError,
  image: ImageError,
  boot: BootError,
  machine: MachineError,
  agent: AgentError,
  command: GuestCommandError,
  result: ResultError,
  aborted: AbortedError,
  internal: KvmtestError,
};

/** The one way to make a kvmtest error: the class follows from the code. */
export function kvmtestError(code: ErrorCode, message: string, options: ErrorOptions = {}): KvmtestError {
  return new CLASSES[CODES[code]](code, message, options);
}

/** The category a code belongs to. */
export function categoryOf(code: ErrorCode): ErrorCategory {
  return CODES[code];
}

/** Every code, for docs and tests. */
export const ERROR_CODES = Object.keys(CODES) as ErrorCode[];

export function isKvmtestError(value: unknown): value is KvmtestError {
  return value instanceof KvmtestError;
}

/** Any thrown value as a kvmtest error: kvmtest's own pass through, anything else is INTERNAL. */
export function asKvmtestError(value: unknown): KvmtestError {
  if (value instanceof KvmtestError) return value;
  return kvmtestError('INTERNAL', value instanceof Error ? value.message : String(value), { cause: value });
}
