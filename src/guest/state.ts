/**
 * A guest's lifecycle. Transitions: booting → running → stopping → stopped;
 * booting|running → failed (QEMU died, kernel panic, link lost) → stopping → stopped.
 */
export type GuestState = 'booting' | 'running' | 'failed' | 'stopping' | 'stopped';

const NEXT: Record<GuestState, GuestState[]> = {
  booting: ['running', 'failed', 'stopping'],
  running: ['failed', 'stopping'],
  failed: ['stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export function canMove(from: GuestState, to: GuestState): boolean {
  return NEXT[from].includes(to);
}
