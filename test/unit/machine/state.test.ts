import { describe, expect, it } from 'vitest';
import { canMove, Lifecycle, type MachineState } from '../../../src/machine/state.js';

const STATES: MachineState[] = ['starting', 'running', 'failed', 'stopping', 'stopped'];
const LEGAL: [MachineState, MachineState][] = [
  ['starting', 'running'],
  ['starting', 'failed'],
  ['starting', 'stopping'],
  ['running', 'failed'],
  ['running', 'stopping'],
  ['failed', 'stopping'],
  ['stopping', 'stopped'],
];

/** A lifecycle walked to `state` through legal moves. */
function at(state: MachineState): Lifecycle {
  const life = new Lifecycle('test');
  const path: Record<MachineState, MachineState[]> = { starting: [], running: ['running'], failed: ['failed'], stopping: ['stopping'], stopped: ['stopping', 'stopped'] };
  for (const to of path[state]) life.move(to);
  return life;
}

describe('machine lifecycle', () => {
  it('starts in starting', () => {
    expect(new Lifecycle('test').state).toBe('starting');
  });

  it.each(LEGAL)('%s → %s is legal', (from, to) => {
    const life = at(from);
    expect(canMove(from, to)).toBe(true);
    life.move(to);
    expect(life.state).toBe(to);
  });

  const illegal = STATES.flatMap((from) => STATES.filter((to) => !LEGAL.some(([f, t]) => f === from && t === to)).map((to) => [from, to] as [MachineState, MachineState]));

  it.each(illegal)('%s → %s throws INTERNAL and leaves the state as it was', (from, to) => {
    const life = at(from);
    expect(canMove(from, to)).toBe(false);
    expect(() => life.move(to)).toThrow(expect.objectContaining({ code: 'INTERNAL', message: expect.stringContaining(`${from} → ${to}`) }));
    expect(life.state).toBe(from);
  });

  it('covers every pair once: 7 legal moves, 18 illegal ones', () => {
    expect(LEGAL.length + illegal.length).toBe(STATES.length ** 2);
    expect(illegal.length).toBe(18);
  });

  it('the running → failed → stopping → stopped path', () => {
    const life = at('running');
    for (const to of ['failed', 'stopping', 'stopped'] as const) life.move(to);
    expect(life.state).toBe('stopped');
  });
});
