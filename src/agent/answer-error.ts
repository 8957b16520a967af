import { type KvmtestError, kvmtestError } from '../errors.js';
import type { ErrorAnswer, RequestType } from './protocol.js';

/** The coded error an agent `error` frame becomes, per request: the agent's codes are errno-like, the host's say what failed. */
export function answerError(t: RequestType, answer: ErrorAnswer): KvmtestError {
  switch (t) {
    case 'exec':
      return answer.code === 'ENOENT' ? kvmtestError('COMMAND_NOT_FOUND', `${answer.message} (in the guest)`) : kvmtestError('GUEST_IO', `exec failed in the guest: ${answer.code}: ${answer.message}`);
    case 'push':
    case 'copy-in':
    case 'pull':
      if (answer.code === 'EBADTAR') return kvmtestError('UNSAFE_ARCHIVE', `the guest refused the archive: ${answer.message}`);
      return kvmtestError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
    case 'identity':
      return kvmtestError('SNAPSHOT_FAILED', `the agent could not take its new identity: ${answer.message}`);
    case 'ping':
      return kvmtestError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
  }
}
