import { kvmtestError } from '../errors.js';

/**
 * A machine's lifecycle: starting → running → stopping → stopped; starting|running → failed (QEMU
 * died, kernel panic, guest shut down) → stopping → stopped; starting → stopping when a start fails.
 */
export type MachineState = 'starting' | 'running' | 'failed' | 'stopping' | 'stopped';

const NEXT: Record<MachineState, readonly MachineState[]> = {
  starting: ['running', 'failed', 'stopping'],
  running: ['failed', 'stopping'],
  failed: ['stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export function canMove(from: MachineState, to: MachineState): boolean {
  return NEXT[from].includes(to);
}

/** The current state; a move the table does not allow is a bug in kvmtest, so it throws INTERNAL. */
export class Lifecycle {
  private current: MachineState;

  constructor(
    readonly name: string,
    initial: MachineState = 'starting',
  ) {
    this.current = initial;
  }

  get state(): MachineState {
    return this.current;
  }

  move(to: MachineState): void {
    if (!canMove(this.current, to)) throw kvmtestError('INTERNAL', `${this.name}: illegal lifecycle move ${this.current} → ${to}`);
    this.current = to;
  }
}
