// What each part of the page draws from: the members' states at the moment shown.

import type { Members } from './members';
import { shownRole, type MState } from './state';

/** A message on its way: drawn from `from` to `to` over FLIGHT_MS after `at`. */
export interface Flight {
  from: number;
  to: number;
  kind: string;
  at: number;
  /** A refusal's reason (refused votes), shown beside the dot. */
  label: string;
  /** Refused vote or rejected append. */
  bad: boolean;
}

export const FLIGHT_MS = 300;
export const MAX_FLIGHTS = 200;

export interface Frame {
  members: Members;
  states: MState[];
  /** The moment shown (page clock). */
  t: number;
  live: boolean;
  /** The member that says it is leader with the highest term (and is reachable), or -1. */
  leader: number;
  flights: Flight[];
}

export function findLeader(states: MState[]): number {
  let best = -1;
  for (let i = 0; i < states.length; i++) {
    const s = states[i];
    if (shownRole(s) !== 'leader') continue;
    if (best < 0 || s.term > states[best].term) best = i;
  }
  return best;
}
