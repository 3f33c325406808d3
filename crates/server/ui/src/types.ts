// The wire format: `/ui/cluster` and the members' `/ui/events` streams (the contract is the module
// doc of crates/server/src/ui/mod.rs), plus the page's own synthetic events ("x-" types).

export type Role = 'leader' | 'follower' | 'candidate' | 'pre-candidate';
export type ShownRole = Role | 'down';
export type Process = 'running' | 'killed' | 'paused' | 'unknown';

export interface ClusterMember {
  name: string;
  id: string;
  client_url: string;
  process?: 'running' | 'killed' | 'paused';
  cut?: boolean;
}

export interface LoadState {
  running: boolean;
  rate: number;
  written: number;
}

export interface Cluster {
  controls: boolean;
  members: ClusterMember[];
  load?: LoadState;
}

export interface Progress {
  id: string;
  match: number;
  next: number;
  state?: string;
  active?: boolean;
}

export interface Heard {
  id: string;
  ms: number;
}

/** One event as received (or made up by the page): `type`, `t`, and the type's fields. */
export interface Ev {
  type: string;
  t: number;
  [field: string]: unknown;
}

/** An event in the timeline: `seq` numbers all events in arrival order, `at` is the page's
 * own clock when it arrived (monotonic), `m` the index of the member whose stream sent it. */
export interface Rec {
  seq: number;
  at: number;
  m: number;
  e: Ev;
}

/** Message kinds, as `msg.kind`. */
export const MSG_KINDS = [
  'append',
  'append-resp',
  'heartbeat',
  'heartbeat-resp',
  'pre-vote',
  'vote',
  'pre-vote-resp',
  'vote-resp',
  'snapshot',
  'timeout-now',
  'read-index',
  'read-index-resp',
  'leader-durable',
] as const;
