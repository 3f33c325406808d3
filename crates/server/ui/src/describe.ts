// Events as sentences: `notable` picks those the event list shows, `sentence` says them.

import type { Members } from './members';
import { idOf, num } from './state';
import type { Rec } from './types';

export const REASONS: Record<string, string> = {
  'stale-log': 'stale log',
  'already-voted': 'already voted',
  'leader-lease': 'still hears a leader',
  'stale-term': 'stale term',
  'better-claim': 'has a better claim',
};

/** The tone of an event in the list (its colour and icon). */
export type Tone = 'elect' | 'vote' | 'refuse' | 'fault' | 'repair' | 'info' | 'you';

export function notable(r: Rec): boolean {
  const e = r.e;
  switch (e.type) {
    case 'hello':
    case 'role':
    case 'peer-lost':
    case 'snapshot':
    case 'members':
    case 'dropped':
    case 'x-stream':
    case 'x-proc':
    case 'x-action':
      return true;
    case 'term':
      return true;
    case 'log':
      // Only entries overwritten (the page notes them: `replacement` in state.ts).
      return typeof e.replaced === 'object' && e.replaced !== null;
    case 'msg':
      switch (e.kind) {
        // Requests show as shapes in flight; the role change says the member asks for votes.
        case 'pre-vote-resp':
        case 'vote-resp':
        case 'snapshot':
        case 'timeout-now':
          return true;
        case 'append-resp':
          return e.reject === true || (typeof e.reject === 'number' && e.reject > 0);
        default:
          return false;
      }
    default:
      return false;
  }
}

function reason(v: unknown): string {
  if (typeof v !== 'string' || !v) return 'no reason given';
  return REASONS[v] ?? v.replace(/-/g, ' ');
}

/** The sentence for an event, with its tone; null for one not worth a sentence. */
export function sentence(r: Rec, members: Members): [string, Tone] | null {
  const e = r.e;
  const me = members.list[r.m]?.name ?? '?';
  const who = (v: unknown) => members.name(idOf(v)) || 'none';
  switch (e.type) {
    case 'hello':
      return [`${me}: connected to its event stream`, 'info'];
    case 'role': {
      const term = num(e.term);
      switch (e.role) {
        case 'leader':
          return [`${me} became leader in term ${term}`, 'elect'];
        case 'candidate':
          return [`${me} became candidate in term ${term}, asking for votes`, 'vote'];
        case 'pre-candidate':
          return [`${me} became pre-candidate (term ${term}), asking for pre-votes`, 'vote'];
        default: {
          const l = idOf(e.leader);
          return [l ? `${me} follows ${who(l)} in term ${term}` : `${me} became follower in term ${term}, no leader`, 'info'];
        }
      }
    }
    case 'term': {
      const v = idOf(e.vote);
      return [`${me} entered term ${num(e.term)}${v ? `, voted for ${who(v)}` : ''}`, 'info'];
    }
    case 'msg': {
      const to = who(e.to);
      const term = num(e.term);
      switch (e.kind) {
        case 'pre-vote':
        case 'vote':
          return [
            `${me} asked ${to} for a ${e.kind} (term ${term}, log ${num(e.last_index)}@${num(e.last_term)})`,
            'vote',
          ];
        case 'pre-vote-resp':
        case 'vote-resp': {
          const what = e.kind === 'vote-resp' ? 'vote' : 'pre-vote';
          return e.granted === true
            ? [`${me} granted ${what} to ${to} (term ${term})`, 'vote']
            : [`${me} refused ${what} to ${to} (term ${term}): ${reason(e.reason)}`, 'refuse'];
        }
        case 'snapshot':
          return [`${me} sent ${to} a snapshot at index ${num(e.index)} (term ${num(e.snapshot_term)})`, 'info'];
        case 'timeout-now':
          return [`${me} told ${to} to campaign now (leadership transfer)`, 'elect'];
        case 'append-resp':
          return [`${me} rejected ${to}'s append (log doesn't match at ${num(e.index)})`, 'refuse'];
        case 'append':
          return [`${me} → ${to}: append ${Array.isArray(e.entries) ? e.entries.length : num(e.entries)} entries after ${num(e.prev_index)}@${num(e.prev_term)}`, 'info'];
        default:
          return [`${me} → ${to}: ${String(e.kind)} (term ${term})`, 'info'];
      }
    }
    case 'peer-lost':
      return e.campaign === true
        ? [`${me}: leader's connection reset, campaigning`, 'fault']
        : [`${me}: connection to ${who(e.peer)} reset`, 'fault'];
    case 'snapshot':
      return e.what === 'installed'
        ? [`${me} installed a snapshot at index ${num(e.index)} (term ${num(e.term)})`, 'info']
        : [`${me} took a snapshot at index ${num(e.index)} (term ${num(e.term)})`, 'info'];
    case 'members': {
      const voters = Array.isArray(e.voters) ? (e.voters as unknown[]).map(who).join(', ') : '';
      const learners = Array.isArray(e.learners) ? (e.learners as unknown[]).map(who).join(', ') : '';
      return [`${me}: voters ${voters || 'none'}${learners ? `; learners ${learners}` : ''}`, 'info'];
    }
    case 'dropped':
      return [`${me}'s stream dropped ${num(e.count)} events (the page fell behind)`, 'fault'];
    case 'commit':
      return [`${me} committed ${num(e.commit)}, applied ${num(e.applied)}`, 'info'];
    case 'log': {
      const rp = e.replaced as { from?: unknown; was?: unknown; now?: unknown } | null | undefined;
      if (rp && typeof rp === 'object') {
        const from = num(rp.from);
        const was = num(rp.was);
        const now = num(rp.now);
        if (!now) return [`${me}: entries from ${from} dropped${was ? ` (term ${was})` : ''}`, 'repair'];
        return [`${me}: entries from ${from} replaced (${was ? `term ${was} → ${now}` : `now term ${now}`})`, 'repair'];
      }
      return [`${me} wrote entries ${num(e.from)}–${num(e.to)}`, 'info'];
    }
    case 'view':
      return [`${me}: view (term ${num(e.term)}, ${String(e.role)})`, 'info'];
    case 'sampled':
      return [`${me} left out ${num(e.count)} messages in the last second`, 'info'];
    case 'x-stream':
      return e.up === true
        ? [`${me} is reachable again`, 'info']
        : [`${me} is unreachable (${e.why === 'silent' ? 'its stream went silent' : 'its stream is down'})`, 'fault'];
    case 'x-proc': {
      const p = String(e.process);
      const parts = [p === 'killed' ? `${me} was killed` : p === 'paused' ? `${me} is paused` : `${me} is running`];
      if (e.cut === true) parts.push('cut off from its peers');
      return [parts.join(', '), p === 'running' && e.cut !== true ? 'info' : 'fault'];
    }
    case 'x-action':
      return [String(e.text), 'you'];
    default:
      return null;
  }
}
