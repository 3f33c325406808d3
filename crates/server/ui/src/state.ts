// What the page knows of one member, and how each event changes it. The same reducer keeps the
// live state and rebuilds the state as of any past moment (the timeline), so both agree.

import type { Ev, Heard, Process, Progress, Rec, Role, ShownRole } from './types';

/** Log entries kept per member (the tail: the panel shows at most this many). */
export const LOG_KEEP = 256;

export interface MState {
  /** Whether the member's event stream is up (connected and not silent). */
  up: boolean;
  /** Whether the stream ever said hello (else nothing below is known). */
  known: boolean;
  role: Role | '';
  term: number;
  vote: string;
  leader: string;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  /** index -> term, the tail of the log. */
  log: Map<number, number>;
  voters: string[];
  learners: string[];
  progress: Progress[];
  heard: Heard[];
  /** Page clock when `heard` was reported (ages grow from there). */
  heardAt: number;
  process: Process;
  cut: boolean;
  /** The last time entries of this log were overwritten (by a leader's entries of another
   * term): what the logs panel highlights for a moment. */
  replaced: Replaced | null;
}

/** Entries `from..=to` overwritten: the term at `from` was `was` (0: not known) and is now
 * `now` (0: dropped, nothing written there), at `at` (page clock). */
export interface Replaced {
  from: number;
  to: number;
  was: number;
  now: number;
  at: number;
}

export function emptyState(): MState {
  return {
    up: false,
    known: false,
    role: '',
    term: 0,
    vote: '',
    leader: '',
    commit: 0,
    applied: 0,
    firstIndex: 0,
    lastIndex: 0,
    snapshotIndex: 0,
    log: new Map(),
    voters: [],
    learners: [],
    progress: [],
    heard: [],
    heardAt: 0,
    process: 'unknown',
    cut: false,
    replaced: null,
  };
}

export function cloneState(s: MState): MState {
  return { ...s, log: new Map(s.log) };
}

const NO_ID = /^0*$/;

/** An id field as a string ('' for none: absent, null, 0 or all zeros). */
export function idOf(v: unknown): string {
  if (typeof v === 'string') return NO_ID.test(v) ? '' : v.toLowerCase().padStart(16, '0');
  if (typeof v === 'number') return v === 0 ? '' : v.toString(16).padStart(16, '0');
  return '';
}

export function num(v: unknown, or = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : or;
}

export function normRole(v: unknown): Role | '' {
  if (typeof v !== 'string') return '';
  const r = v.toLowerCase().replace(/[_\s]/g, '-');
  if (r === 'leader' || r === 'follower' || r === 'candidate') return r;
  if (r === 'pre-candidate' || r === 'precandidate') return 'pre-candidate';
  return '';
}

export function shownRole(s: MState): ShownRole {
  if (!s.up || s.process === 'killed' || s.role === '') return 'down';
  return s.role;
}

function trimLog(s: MState): void {
  const lo = s.lastIndex - LOG_KEEP;
  if (s.log.size <= LOG_KEEP) return;
  for (const i of s.log.keys()) if (i <= lo) s.log.delete(i);
}

function dropFrom(log: Map<number, number>, from: number): void {
  for (const i of log.keys()) if (i >= from) log.delete(i);
}

/** What a `log` event about to be applied to `s` overwrites: entries at or after `from` that
 * the log had (`from` <= its last index) in another term; null if it only appends. (The page
 * notes it on the event, as `replaced`, for the event list and for `apply`.) */
export function replacement(s: MState, e: Ev): Omit<Replaced, 'at'> | null {
  if (e.type !== 'log' || !s.known) return null;
  const from = num(e.from);
  if (from <= 0 || from > s.lastIndex) return null;
  const was = s.log.get(from) ?? 0;
  let now = 0;
  if (Array.isArray(e.runs)) {
    for (const run of e.runs as unknown[]) {
      if (Array.isArray(run) && run.length >= 3 && num(run[0]) <= from && from <= num(run[1])) {
        now = num(run[2]);
        break;
      }
    }
  }
  // Same index, same term: the same entry (Log Matching), nothing diverged.
  if (was !== 0 && was === now) return null;
  return { from, to: Math.min(num(e.to, from - 1), s.lastIndex), was, now };
}

/** Applies one event (of this member's stream, or the page's own about it) to its state. */
export function apply(s: MState, r: Rec): void {
  const e: Ev = r.e;
  switch (e.type) {
    case 'hello':
      s.known = true;
      s.up = true;
      break;
    case 'view': {
      s.known = true;
      s.up = true;
      s.role = normRole(e.role);
      s.term = num(e.term, s.term);
      s.vote = idOf(e.vote);
      s.leader = idOf(e.leader);
      s.commit = num(e.commit, s.commit);
      s.applied = num(e.applied, s.applied);
      s.firstIndex = num(e.first_index, s.firstIndex);
      s.lastIndex = num(e.last_index, s.lastIndex);
      s.snapshotIndex = num(e.snapshot_index, s.snapshotIndex);
      dropFrom(s.log, s.lastIndex + 1);
      if (Array.isArray(e.log)) {
        for (const p of e.log as unknown[]) {
          if (Array.isArray(p) && p.length >= 2) s.log.set(num(p[0]), num(p[1]));
        }
      }
      for (const i of s.log.keys()) if (i < s.firstIndex || i <= s.snapshotIndex) s.log.delete(i);
      trimLog(s);
      s.voters = Array.isArray(e.voters) ? (e.voters as unknown[]).map(idOf) : s.voters;
      s.learners = Array.isArray(e.learners) ? (e.learners as unknown[]).map(idOf) : s.learners;
      s.progress = Array.isArray(e.progress)
        ? (e.progress as Record<string, unknown>[]).map((p) => ({
            id: idOf(p.id),
            match: num(p.match),
            next: num(p.next),
            state: typeof p.state === 'string' ? p.state : undefined,
            active: typeof p.active === 'boolean' ? p.active : undefined,
          }))
        : [];
      s.heard = Array.isArray(e.heard)
        ? (e.heard as Record<string, unknown>[]).map((h) => ({ id: idOf(h.id), ms: num(h.ms) }))
        : [];
      s.heardAt = r.at;
      break;
    }
    case 'role':
      s.role = normRole(e.role) || s.role;
      s.term = num(e.term, s.term);
      s.leader = idOf(e.leader);
      if (s.role !== 'leader') s.progress = [];
      break;
    case 'term':
      s.term = num(e.term, s.term);
      s.vote = idOf(e.vote);
      break;
    case 'log': {
      const rp = e.replaced as Omit<Replaced, 'at'> | undefined;
      if (rp && typeof rp === 'object') s.replaced = { ...rp, at: r.at };
      const from = num(e.from);
      const to = num(e.to, from - 1);
      if (from > 0) dropFrom(s.log, from);
      if (Array.isArray(e.runs)) {
        for (const run of e.runs as unknown[]) {
          if (!Array.isArray(run) || run.length < 3) continue;
          const term = num(run[2]);
          const lo = Math.max(num(run[0]), to - LOG_KEEP + 1);
          for (let i = lo; i <= num(run[1]); i++) s.log.set(i, term);
        }
      }
      if (to >= from - 1 && from > 0) s.lastIndex = to;
      trimLog(s);
      break;
    }
    case 'commit':
      s.commit = num(e.commit, s.commit);
      s.applied = num(e.applied, s.applied);
      break;
    case 'snapshot':
      if (e.what === 'installed') {
        const index = num(e.index);
        s.snapshotIndex = index;
        s.firstIndex = index + 1;
        if (s.lastIndex < index) {
          s.log.clear();
          s.lastIndex = index;
        } else {
          for (const i of s.log.keys()) if (i <= index) s.log.delete(i);
        }
        s.commit = Math.max(s.commit, index);
        s.applied = Math.max(s.applied, index);
      } else if (e.what === 'taken') {
        s.snapshotIndex = Math.max(s.snapshotIndex, num(e.index));
      }
      break;
    case 'members':
      if (Array.isArray(e.voters)) s.voters = (e.voters as unknown[]).map(idOf);
      if (Array.isArray(e.learners)) s.learners = (e.learners as unknown[]).map(idOf);
      break;
    case 'x-stream':
      s.up = e.up === true;
      break;
    case 'x-proc':
      s.process = (e.process as Process) ?? 'unknown';
      s.cut = e.cut === true;
      break;
    default:
      break;
  }
}
