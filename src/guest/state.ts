import type { MachineState } from '../machine/state.js';

/** A guest's lifecycle (its machine's, from the hello on): running → stopping → stopped; running → failed → stopping → stopped. */
export type GuestState = Exclude<MachineState, 'starting'>;
