import { type KvmtestError, kvmtestError } from '../errors.js';
import type { ErrorAnswer, RequestType } from './protocol.js';

/** The coded error an agent `error` frame becomes, per request: the agent's codes are errno-like, the host's say what failed. */
export function answerError(t: RequestType, answer: ErrorAnswer): KvmtestError {
  switch (t) {
    case 'exec':
      return answer.code === 'ENOENT' ? kvmtestError('COMMAND_NOT_FOUND', `${answer.message} (in the guest)`) : kvmtestError('GUEST_IO', `exec failed in the guest: ${answer.code}: ${answer.message}`);
    case 'pull':
      // the agent stopped itself at the caps the host passed: the same codes as when the host counts
      if (answer.code === 'ETOOMANY') return kvmtestError('PULL_TOO_MANY_ENTRIES', `${answer.message} (the guest agent stopped at the maxEntries option)`);
      if (answer.code === 'ETOOBIG') return kvmtestError('PULL_TOO_LARGE', `${answer.message} (the guest agent stopped at the maxBytes option)`);
      if (answer.code === 'EBADTAR') return kvmtestError('UNSAFE_ARCHIVE', `the guest refused the archive: ${answer.message}`);
      return kvmtestError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
    case 'push':
    case 'copy-in':
      if (answer.code === 'EBADTAR') return kvmtestError('UNSAFE_ARCHIVE', `the guest refused the archive: ${answer.message}`);
      return kvmtestError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
    case 'identity':
      return kvmtestError('SNAPSHOT_FAILED', `the agent could not take its new identity: ${answer.message}`);
    case 'ping':
      return kvmtestError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
  }
}
