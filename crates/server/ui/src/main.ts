// Tally's live view of Raft: follows every member's event stream, keeps the last minutes of
// events, and draws the cluster as of now (or of any moment on the timeline).

import './style.css';
import { getCluster, memberAction, type MemberAction } from './api';
import { Cards } from './cards';
import { ClientPanel } from './client';
import { REASONS, notable } from './describe';
import { $, setText } from './dom';
import { EventList } from './eventlist';
import { FLIGHT_MS, MAX_FLIGHTS, findLeader, type Flight, type Frame } from './frame';
import { Graph } from './graph';
import { Logs } from './logs';
import { Members } from './members';
import { idOf, num, replacement, type MState } from './state';
import { Store } from './store';
import { Stream } from './streams';
import { Timeline } from './timeline';
import type { Cluster, Ev, Rec } from './types';

const POLL_MS = 1000;

const members = new Members();
const store = new Store();
const streams: Stream[] = [];
let controls = false;
let liveFlights: Flight[] = [];
/** Per member: msg events left out (`sampled`) in its last report, and when that came. */
const sampled: { count: number; at: number }[] = [];
let dropped = 0;
let dirty = true;

const cards = new Cards($('cards'), act);
const graph = new Graph(document.getElementById('graph') as unknown as SVGSVGElement);
const logs = new Logs($('logs'));
const events = new EventList($('events') as HTMLOListElement, store, members);
const client = new ClientPanel((text, member) =>
  record(member ? members.indexOfName(member) : -1, { type: 'x-action', t: Date.now(), text }),
);
const timeline = new Timeline(store, members, {
  slider: $('timeline-slider') as HTMLInputElement,
  live: $('timeline-live') as HTMLButtonElement,
  pause: $('timeline-pause') as HTMLButtonElement,
  back: $('timeline-back') as HTMLButtonElement,
  forward: $('timeline-forward') as HTMLButtonElement,
  where: $('timeline-where'),
  what: $('timeline-what'),
});

/** Adds an event to the timeline (m = -1: the page's own, filed under the first member). */
function record(m: number, e: Ev): void {
  if (!store.live.length) return;
  dirty = true;
  store.push(Math.max(0, m), e, notable({ seq: 0, at: 0, m, e }));
}

function flightOf(r: Rec): Flight | null {
  const e = r.e;
  const to = members.indexOfId(idOf(e.to));
  if (to < 0 || to === r.m) return null;
  const kind = String(e.kind);
  const refused = (kind === 'vote-resp' || kind === 'pre-vote-resp') && e.granted !== true;
  const rejected = kind === 'append-resp' && (e.reject === true || num(e.reject) > 0);
  const label = refused ? `✗ ${REASONS[String(e.reason)] ?? String(e.reason ?? 'refused')}` : rejected ? '✗ mismatch' : '';
  return { from: r.m, to, kind, at: r.at, label, bad: refused || rejected };
}

store.onEvent = (r) => {
  if (r.e.type === 'msg') {
    const f = flightOf(r);
    if (f) {
      liveFlights.push(f);
      if (liveFlights.length > MAX_FLIGHTS * 2) liveFlights = liveFlights.slice(-MAX_FLIGHTS);
    }
  }
};

function connect(m: number): void {
  const url = `${members.list[m].clientUrl.replace(/\/+$/, '')}/ui/events`;
  streams[m] = new Stream(url, {
    event(e) {
      if (e.type === 'hello') {
        const id = idOf(e.id);
        if (id && members.indexOfId(id) < 0) members.setId(m, id);
      } else if (e.type === 'sampled') {
        sampled[m] = { count: num(e.count), at: performance.now() };
      } else if (e.type === 'dropped') {
        dropped += num(e.count);
      } else if (e.type === 'log') {
        // Entries overwritten (a diverged log repaired): noted on the event, for the event
        // list's sentence and the logs panel's highlight.
        const rp = replacement(store.live[m], e);
        if (rp) e.replaced = rp;
      }
      record(m, e);
    },
    status(up, why) {
      const st = store.live[m];
      // A stream coming back with a hello says so itself; one resuming (a paused member) does not.
      if (up ? why !== 'hello' && st.known && !st.up : st.up) record(m, { type: 'x-stream', t: Date.now(), up, why });
    },
  });
}

function applyCluster(c: Cluster): void {
  controls = c.controls === true;
  cards.controls = controls;
  ($('client') as HTMLElement).hidden = !controls;
  for (const cm of c.members) {
    let m = members.indexOfName(cm.name);
    if (m < 0) {
      m = members.add(cm.name, idOf(cm.id), cm.client_url);
      store.addMember();
      sampled[m] = { count: 0, at: 0 };
      connect(m);
      dirty = true;
    } else if (cm.id && !members.list[m].id) {
      members.setId(m, idOf(cm.id));
    }
    if (controls) {
      const process = cm.process ?? 'unknown';
      const cut = cm.cut === true;
      const s = store.live[m];
      if (s.process !== process || s.cut !== cut) {
        const first = s.process === 'unknown' && process === 'running' && !cut;
        const e: Ev = { type: 'x-proc', t: Date.now(), process, cut };
        dirty = true;
        store.push(m, e, !first);
      }
    }
  }
  client.setMembers(members.list.map((m) => m.name));
  client.show(c.load);
}

async function poll(): Promise<void> {
  try {
    applyCluster(await getCluster());
    setText($('conn'), '');
  } catch (err) {
    setText($('conn'), `Cannot read /ui/cluster: ${(err as Error).message}`);
  }
  window.setTimeout(poll, POLL_MS);
}

async function act(name: string, action: MemberAction): Promise<void> {
  const m = members.indexOfName(name);
  record(m, { type: 'x-action', t: Date.now(), text: `you asked to ${action} ${name}` });
  applyCluster(await memberAction(name, action));
}

// --- drawing ---

const announce = $('announce');
const leaderEl = $('leader');
const leaderTerm = $('leader-term');
const stats = $('stats');
let lastLeader = '';
let pastVersion = -1;
let pastStates: MState[] = [];
let pastFlights: Flight[] = [];

function flightsBefore(seq: number, at: number): Flight[] {
  const out: Flight[] = [];
  for (let q = seq; q >= store.base; q--) {
    const r = store.get(q);
    if (!r || at - r.at > FLIGHT_MS) break;
    if (r.e.type !== 'msg') continue;
    const f = flightOf(r);
    if (f) out.push(f);
    if (out.length >= MAX_FLIGHTS) break;
  }
  return out.reverse();
}

let timelineAt = 0;
let timelineVersion = -1;

function frame(): void {
  // The timeline's controls move with every frame when live: four times a second is enough.
  const ms = performance.now();
  if (!timeline.live || timeline.version !== timelineVersion || ms - timelineAt > 250) {
    timelineAt = ms;
    timelineVersion = timeline.version;
    timeline.render();
  }
  let states: MState[];
  let flights: Flight[];
  const t = timeline.shownAt();
  if (timeline.live) {
    states = store.live;
    const cutoff = t - FLIGHT_MS;
    let k = 0;
    while (k < liveFlights.length && liveFlights[k].at < cutoff) k++;
    if (k) liveFlights = liveFlights.slice(k);
    flights = liveFlights;
  } else {
    if (pastVersion !== timeline.version) {
      pastVersion = timeline.version;
      pastStates = store.stateAt(timeline.cursor);
      pastFlights = flightsBefore(timeline.cursor, t);
      dirty = true;
    }
    states = pastStates;
    flights = pastFlights;
  }
  const leader = findLeader(states);
  const f: Frame = { members, states, t, live: timeline.live, leader, flights };
  const leaderName = leader >= 0 ? members.list[leader].name : '';
  setText(leaderEl, leaderName);
  setText(leaderTerm, leader >= 0 ? `term ${states[leader].term}` : 'none');
  const said = leader >= 0 ? `${leaderName} is the leader, term ${states[leader].term}` : 'No leader';
  if (timeline.live && said !== lastLeader) {
    lastLeader = said;
    announce.textContent = said;
  }
  graph.render(f);
  cards.render(f, store.live);
  if (t >= logs.expires) dirty = true; // a highlight of overwritten entries goes out
  if (dirty) {
    dirty = false;
    logs.render(f);
    events.render(timeline.shownSeq());
  }
  const nowMs = performance.now();
  const s = sampled.reduce((a, b) => a + (nowMs - b.at < 2500 ? b.count : 0), 0);
  setText(stats, `messages left out: ${s}/s · events dropped: ${dropped}`);
  requestAnimationFrame(frame);
}

setInterval(() => {
  for (const st of streams) st?.check();
}, 250);
window.addEventListener('resize', () => (dirty = true));
void poll();
requestAnimationFrame(frame);
