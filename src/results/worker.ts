// Parses one result file off the host's event loop (started by results/file.ts with a timeout and memory limits).
import { parentPort, workerData } from 'node:worker_threads';
import { isKvmtestError } from '../errors.js';
import type { WorkerAnswer, WorkerInput } from './file.js';
import { packCases } from './pack.js';
import { parseResults } from './parse.js';

const { bytes, displayName } = workerData as WorkerInput;
let answer: WorkerAnswer;
try {
  const cases = parseResults(Buffer.from(bytes).toString('utf8'), displayName);
  answer = { packed: cases && packCases(cases) };
} catch (error) {
  answer = {
    error: {
      code: isKvmtestError(error) ? error.code : 'RESULT_PARSE_FAILED',
      message: isKvmtestError(error) ? error.message : `Could not parse ${displayName}: ${error instanceof Error ? error.message : String(error)}`,
    },
  };
}
parentPort!.postMessage(answer);
