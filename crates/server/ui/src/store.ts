// The timeline: every event of the last minutes, in arrival order, and the state of each member
// as of any of them (the last `view` at or before it, plus the events after that view).

import { apply, cloneState, emptyState, type MState } from './state';
import type { Ev, Rec } from './types';

export const KEEP_MS = 10 * 60 * 1000;
export const KEEP_EVENTS = 200_000;
/** Views replayed before the cursor's (filling the log tail with more than one view shows). */
const VIEWS_BEFORE = 4;
/** Without any view before the cursor, at most this many events are replayed. */
const REPLAY_MAX = 5000;

/** Page clock: monotonic milliseconds, comparable with `Date.now()`. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Last position in sorted `a` whose value is <= x (-1 if none). */
export function lastAtOrBefore(a: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export class Store {
  /** The events kept, `recs[i].seq === base + i`. */
  recs: Rec[] = [];
  base = 0;
  /** Per member: seqs of its views, of its stream status and of its process status. */
  private views: number[][] = [];
  private streams: number[][] = [];
  private procs: number[][] = [];
  /** Seqs of events the event list shows (see `describe`). */
  notes: number[] = [];
  /** The state now, kept event by event. */
  live: MState[] = [];
  /** Calls for each new event (after it is applied to `live`). */
  onEvent: ((r: Rec) => void) | null = null;
  private ats: number[] = [];

  addMember(): number {
    this.views.push([]);
    this.streams.push([]);
    this.procs.push([]);
    this.live.push(emptyState());
    return this.live.length - 1;
  }

  get end(): number {
    return this.base + this.recs.length;
  }

  get(seq: number): Rec | undefined {
    return this.recs[seq - this.base];
  }

  push(m: number, e: Ev, notable: boolean): Rec {
    const r: Rec = { seq: this.end, at: now(), m, e };
    if (this.ats.length && r.at < this.ats[this.ats.length - 1]) r.at = this.ats[this.ats.length - 1];
    this.recs.push(r);
    this.ats.push(r.at);
    if (e.type === 'view') this.views[m].push(r.seq);
    else if (e.type === 'x-stream') this.streams[m].push(r.seq);
    else if (e.type === 'x-proc') this.procs[m].push(r.seq);
    if (notable) this.notes.push(r.seq);
    apply(this.live[m], r);
    this.onEvent?.(r);
    if (this.recs.length > KEEP_EVENTS * 1.05 || (this.recs.length & 1023) === 0) this.trim();
    return r;
  }

  /** Forgets events beyond the cap or older than KEEP_MS. */
  trim(): void {
    let drop = Math.max(0, this.recs.length - KEEP_EVENTS);
    const oldest = now() - KEEP_MS;
    while (drop < this.recs.length && this.recs[drop].at < oldest) drop++;
    if (drop === 0) return;
    this.recs.splice(0, drop);
    this.ats.splice(0, drop);
    this.base += drop;
    const cut = (a: number[]) => {
      const k = lastAtOrBefore(a, this.base - 1) + 1;
      if (k > 0) a.splice(0, k);
    };
    for (const a of [...this.views, ...this.streams, ...this.procs, this.notes]) cut(a);
  }

  /** Last seq whose arrival is at or before `at` (base - 1 if none). */
  seqAt(at: number): number {
    return this.base + lastAtOrBefore(this.ats, at);
  }

  /** Every member's state just after event `seq`. */
  stateAt(seq: number): MState[] {
    if (seq >= this.end - 1) return this.live.map(cloneState);
    const n = this.live.length;
    const states: MState[] = [];
    const starts: number[] = [];
    for (let m = 0; m < n; m++) {
      const s = emptyState();
      for (const list of [this.streams[m], this.procs[m]]) {
        const k = lastAtOrBefore(list, seq);
        if (k >= 0) apply(s, this.get(list[k])!);
      }
      const views = this.views[m];
      const k = lastAtOrBefore(views, seq);
      starts.push(k >= 0 ? views[Math.max(0, k - VIEWS_BEFORE)] : Math.max(this.base, seq - REPLAY_MAX));
      states.push(s);
    }
    const from = Math.max(this.base, Math.min(...starts, seq + 1));
    for (let q = from; q <= seq; q++) {
      const r = this.recs[q - this.base];
      if (r && q >= starts[r.m]) apply(states[r.m], r);
    }
    return states;
  }
}
