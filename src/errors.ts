/** Every error kvmtest throws on purpose: a stable `code`, a message that says what to do, the original as `cause`. */
const BRAND = Symbol.for('kvmtest.error');

export type ErrorCode =
  // host requirements
  | 'QEMU_NOT_FOUND'
  | 'QEMU_IMG_NOT_FOUND'
  | 'ISO_TOOL_NOT_FOUND'
  | 'KVM_UNUSABLE'
  // input
  | 'INVALID_OPTION'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_INVALID'
  | 'IMAGE_BUILD_FAILED'
  | 'CLOUD_CONFIG_INVALID'
  // boot
  | 'BOOT_TIMEOUT'
  | 'QEMU_EXITED'
  | 'KERNEL_PANIC'
  | 'NOT_BOOTABLE'
  | 'QMP_ERROR'
  // agent link
  | 'AGENT_DISCONNECTED'
  | 'AGENT_PROTOCOL'
  | 'GUEST_DISPOSED'
  // requests
  | 'EXEC_TIMEOUT'
  | 'COMMAND_NOT_FOUND'
  | 'GUEST_IO'
  | 'HOST_IO'
  | 'LOCAL_PATH_NOT_FOUND'
  | 'UNSAFE_ARCHIVE'
  | 'ABORTED'
  | 'SNAPSHOT_FAILED'
  // matrix and reports
  | 'CONFIG_INVALID'
  | 'REPORT_INVALID'
  | 'NODE_UNSUPPORTED'
  | 'CELL_TIMEOUT'
  | 'SHARD_MISSING'
  | 'RESULT_PARSE_FAILED'
  // image catalog, downloads and cache
  | 'IMAGE_UNKNOWN'
  | 'DOWNLOAD_FAILED'
  | 'DOWNLOAD_NOT_FOUND'
  | 'DOWNLOAD_TIMEOUT'
  | 'CHECKSUM_MISMATCH'
  | 'NO_CLOUD_INIT'
  // untrusted images and the cache (issue 10, item 3)
  | 'CACHE_UNSAFE'
  | 'DOWNLOAD_INSECURE'
  | 'SIGNATURE_INVALID'
  // host memory and event loop under a flooding guest (issue 10)
  | 'OUTPUT_LIMIT'
  | 'RESULT_TOO_LARGE'
  // pulls (issue 10: a guest's archive is untrusted)
  | 'PULL_DEST_SYMLINK'
  | 'PULL_DEST_NOT_EMPTY'
  | 'PULL_TOO_LARGE'
  | 'PULL_TOO_MANY_ENTRIES';

export class KvmtestError extends Error {
  readonly code: ErrorCode;
  /** Last lines of the guest's serial console, when the guest's state explains the error. */
  consoleTail?: string;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; consoleTail?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.consoleTail !== undefined) this.consoleTail = options.consoleTail;
  }

  /** instanceof that also works across duplicate installs of kvmtest. */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  get [BRAND](): true {
    return true;
  }
}

/** The host lacks something kvmtest needs (QEMU, an ISO tool, usable KVM). */
export class HostError extends KvmtestError {}
/** An option, image or cloud-config given by the user is wrong. */
export class InputError extends KvmtestError {}
/** The guest did not come up: timeout, QEMU exited, kernel panic. */
export class BootError extends KvmtestError {}
/** The agent link failed: disconnect, protocol violation, guest gone. */
export class AgentError extends KvmtestError {}
/** A command, push or pull inside the guest failed. */
export class GuestCommandError extends KvmtestError {}

export function isKvmtestError(value: unknown): value is KvmtestError {
  return value instanceof KvmtestError;
}
