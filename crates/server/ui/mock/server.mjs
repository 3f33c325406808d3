// A stand-in for `tally dev`, for working on the page without building Tally: `npm run mock`
// (after `npm run build`), then open http://127.0.0.1:2378/ui.
//
// It runs a toy Raft of three members in this process (pre-vote, check-quorum, leader leases,
// the fast failover on a lost connection, pipelined appends, snapshots) and serves what the real
// thing serves: the page and `/ui/cluster` + `/dev/...` on --port (default 2378), and each
// member's `/ui/events` stream (the protocol of crates/server/src/ui/mod.rs) on its own client
// port (--port + 1, + 2, + 3). Kill, pause and cut act on the toy members. It is a development
// aid only: the end-to-end tests (tests/ui) run against a real cluster.
//
// Options: --port N, --members N (1..6), --watch (serve dist/ fresh on each request: rebuild
// with `npx vite build --watch` in another terminal).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const PORT = Number(opt('port', 2378));
const N = Math.max(1, Math.min(6, Number(opt('members', 3))));
const DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');

const TICK_MS = 10;
const HEARTBEAT_TICKS = 3; // 30 ms, as tally's default
const ELECTION_TICKS = 15; // 150 ms
const VIEW_MS = 200;
const MSG_PER_SEC = 100;
const SNAPSHOT_EVERY = 20000;
const KEEP_AFTER_SNAPSHOT = 2000;
const MAX_BATCH = 4000;

const rand = (n) => Math.floor(Math.random() * n);
const hexId = (i) => (0x8e9e05c52164694dn + BigInt(i) * 0x1d3f5a7b9c2e41n).toString(16).padStart(16, '0').slice(-16);

class Member {
  constructor(i) {
    this.i = i;
    this.name = `n${i + 1}`;
    this.id = hexId(i);
    this.port = PORT + 1 + i;
    this.clients = new Set();
    this.server = null;
    this.sockets = new Set();
    this.process = 'running';
    this.cut = false;
    // Persistent state.
    this.term = 1;
    this.vote = '';
    this.snapIndex = 0;
    this.snapTerm = 0;
    this.terms = []; // terms[k] = term of entry snapIndex + 1 + k
    this.commit = 0;
    this.applied = 0;
    this.boot();
  }

  boot() {
    this.role = 'follower';
    this.leader = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.timeout = ELECTION_TICKS + rand(HEARTBEAT_TICKS);
    this.progress = new Map();
    this.votes = new Map();
    this.heard = new Map();
    this.leftOut = 0;
  }

  get last() {
    return this.snapIndex + this.terms.length;
  }
  termAt(i) {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.last) return -1;
    return this.terms[i - this.snapIndex - 1];
  }
  get alive() {
    return this.process === 'running';
  }

  emit(e) {
    if (!this.alive) return;
    const line = `data: ${JSON.stringify({ ...e, t: Date.now() })}\n\n`;
    for (const res of this.clients) res.write(line);
  }

  view() {
    const log = [];
    for (let i = Math.max(this.snapIndex + 1, this.last - 59); i <= this.last; i++) log.push([i, this.termAt(i)]);
    const now = Date.now();
    return {
      type: 'view',
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.commit,
      applied: this.applied,
      first_index: this.snapIndex + 1,
      last_index: this.last,
      snapshot_index: this.snapIndex,
      log,
      voters: members.map((m) => m.id),
      learners: [],
      progress:
        this.role === 'leader'
          ? [...this.progress].map(([id, p]) => ({ id, match: p.match, next: p.next, state: p.state, active: p.active }))
          : [],
      heard: [...this.heard].map(([id, at]) => ({ id, ms: now - at })),
    };
  }

  setRole(role, leader) {
    const changed = role !== this.role || leader !== this.leader;
    this.role = role;
    this.leader = leader;
    if (changed) this.emit({ type: 'role', role, term: this.term, leader });
  }

  setTerm(term, vote) {
    if (term === this.term && vote === this.vote) return;
    this.term = term;
    this.vote = vote;
    this.emit({ type: 'term', term, vote });
  }

  send(to, kind, body = {}) {
    const msg = { kind, from: this.id, term: body.term ?? this.term, ...body };
    // At most MSG_PER_SEC shown, spread evenly (a token bucket holding a tenth of a second).
    const now = Date.now();
    this.tokens = Math.min(MSG_PER_SEC / 10, (this.tokens ?? 0) + ((now - (this.tokenAt ?? now)) * MSG_PER_SEC) / 1000);
    this.tokenAt = now;
    if (this.tokens >= 1) {
      this.tokens--;
      const { from: _from, ...shown } = msg;
      this.emit({ type: 'msg', to: to.id, ...shown, entries: kind === 'append' ? msg.entries.length : undefined });
    } else this.leftOut++;
    network.push({ from: this, to, msg });
  }

  others() {
    return members.filter((m) => m !== this);
  }

  write(from, terms) {
    // Entries from `from` on, replacing any there.
    const keep = from - 1 - this.snapIndex;
    if (keep < this.terms.length) this.terms.length = Math.max(0, keep);
    for (const t of terms) this.terms.push(t);
    const runs = [];
    let start = from;
    for (let i = from; i <= this.last; i++) {
      if (i === this.last || this.termAt(i + 1) !== this.termAt(i)) {
        runs.push([start, i, this.termAt(i)]);
        start = i + 1;
      }
    }
    this.emit({ type: 'log', from, to: this.last, runs });
  }

  setCommit(c) {
    c = Math.min(c, this.last);
    if (c > this.commit) {
      this.commit = c;
      this.emit({ type: 'commit', commit: this.commit, applied: this.applied });
    }
  }

  // --- roles ---

  becomeFollower(term, leader) {
    if (term > this.term) this.setTerm(term, '');
    this.electionElapsed = 0;
    this.timeout = ELECTION_TICKS + rand(HEARTBEAT_TICKS);
    this.setRole('follower', leader);
  }

  campaign(pre) {
    this.votes = new Map([[this.id, true]]);
    this.electionElapsed = 0;
    this.timeout = ELECTION_TICKS + rand(ELECTION_TICKS);
    if (pre) {
      this.setRole('pre-candidate', '');
    } else {
      this.setTerm(this.term + 1, this.id);
      this.setRole('candidate', '');
    }
    if (members.length === 1) return this.pollWon(pre);
    for (const p of this.others())
      this.send(p, pre ? 'pre-vote' : 'vote', { term: this.term + (pre ? 1 : 0), last_index: this.last, last_term: this.termAt(this.last) });
  }

  pollWon(pre) {
    if (pre) this.campaign(false);
    else this.becomeLeader();
  }

  becomeLeader() {
    this.setRole('leader', this.id);
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.progress = new Map(
      this.others().map((p) => [p.id, { match: 0, next: this.last + 1, state: 'probe', active: true, recent: true }]),
    );
    this.propose(1);
  }

  propose(n) {
    const from = this.last + 1;
    this.write(from, new Array(n).fill(this.term));
    this.replicate();
    if (members.length === 1) this.setCommit(this.last);
    return this.last;
  }

  replicate(force = false) {
    for (const p of this.others()) {
      const pr = this.progress.get(p.id);
      if (!pr) continue;
      if (pr.next <= this.snapIndex) {
        if (force || pr.state !== 'snapshot') {
          pr.state = 'snapshot';
          this.send(p, 'snapshot', { index: this.snapIndex, snapshot_term: this.snapTerm });
        }
        continue;
      }
      if (pr.next > this.last && !force) continue;
      if (pr.state === 'probe' && !force && pr.next <= pr.match + 1 && pr.sentProbe) continue;
      const hi = Math.min(this.last, pr.next + MAX_BATCH - 1);
      const entries = [];
      for (let i = pr.next; i <= hi; i++) entries.push(this.termAt(i));
      this.send(p, 'append', {
        prev_index: pr.next - 1,
        prev_term: this.termAt(pr.next - 1),
        entries,
        commit: this.commit,
      });
      if (pr.state === 'replicate') pr.next = hi + 1;
      else pr.sentProbe = true;
    }
  }

  maybeCommit() {
    const matches = [this.last, ...[...this.progress.values()].map((p) => p.match)].sort((a, b) => b - a);
    const q = matches[Math.floor(members.length / 2)];
    if (q > this.commit && this.termAt(q) === this.term) {
      this.setCommit(q);
      for (const p of this.others()) {
        const pr = this.progress.get(p.id);
        if (pr && pr.match >= this.commit) this.send(p, 'heartbeat', { commit: this.commit });
      }
    }
  }

  inLease() {
    return this.leader !== '' && this.electionElapsed < ELECTION_TICKS;
  }

  // --- clock ---

  tick() {
    if (!this.alive) return;
    if (this.applied < this.commit) {
      this.applied = this.commit;
      this.emit({ type: 'commit', commit: this.commit, applied: this.applied });
      if (this.applied - this.snapIndex > SNAPSHOT_EVERY) this.snapshot();
    }
    if (this.role === 'leader') {
      this.heartbeatElapsed++;
      this.electionElapsed++;
      if (this.electionElapsed >= ELECTION_TICKS) {
        this.electionElapsed = 0;
        const active = 1 + [...this.progress.values()].filter((p) => p.recent).length;
        for (const p of this.progress.values()) {
          p.active = p.recent;
          p.recent = false;
        }
        if (active <= members.length / 2) return this.becomeFollower(this.term, '');
      }
      if (this.heartbeatElapsed >= HEARTBEAT_TICKS) {
        this.heartbeatElapsed = 0;
        for (const p of this.others()) {
          const pr = this.progress.get(p.id);
          this.send(p, 'heartbeat', { commit: Math.min(this.commit, pr ? pr.match : 0) });
        }
      }
      this.replicate();
    } else {
      this.electionElapsed++;
      if (this.electionElapsed >= this.timeout) this.campaign(true);
    }
  }

  snapshot() {
    const index = this.applied - KEEP_AFTER_SNAPSHOT;
    if (index <= this.snapIndex) return;
    const term = this.termAt(index);
    this.terms.splice(0, index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = term;
    this.emit({ type: 'snapshot', what: 'taken', index, term });
  }

  // --- messages ---

  receive(from, m) {
    if (!this.alive) return;
    this.heard.set(from.id, Date.now());
    const vote = m.kind === 'pre-vote' || m.kind === 'vote';
    if (m.term > this.term) {
      if (vote && this.inLease()) {
        return this.send(from, `${m.kind}-resp`, { term: m.term, granted: false, reason: 'leader-lease' });
      }
      if (m.kind === 'pre-vote' || (m.kind === 'pre-vote-resp' && m.granted)) {
        // A pre-vote does not move terms.
      } else {
        const fromLeader = m.kind === 'append' || m.kind === 'heartbeat' || m.kind === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? from.id : '');
      }
    } else if (m.term < this.term) {
      if (m.kind === 'append' || m.kind === 'heartbeat') this.send(from, 'append-resp', { index: this.last, reject: false });
      else if (vote) this.send(from, `${m.kind}-resp`, { term: this.term, granted: false, reason: 'stale-term' });
      return;
    }
    switch (m.kind) {
      case 'pre-vote':
      case 'vote': {
        const upToDate = m.last_term > this.termAt(this.last) || (m.last_term === this.termAt(this.last) && m.last_index >= this.last);
        let reason = '';
        if (!upToDate) reason = 'stale-log';
        else if (m.kind === 'vote' && this.vote !== '' && this.vote !== from.id) reason = 'already-voted';
        if (!reason && m.kind === 'vote') {
          this.setTerm(this.term, from.id);
          this.electionElapsed = 0;
        }
        this.send(from, `${m.kind}-resp`, { term: m.term, granted: !reason, reason: reason || undefined });
        break;
      }
      case 'pre-vote-resp':
      case 'vote-resp': {
        const pre = m.kind === 'pre-vote-resp';
        if (this.role !== (pre ? 'pre-candidate' : 'candidate')) break;
        this.votes.set(from.id, m.granted);
        const yes = [...this.votes.values()].filter(Boolean).length;
        const no = this.votes.size - yes;
        if (yes > members.length / 2) this.pollWon(pre);
        else if (members.length - no <= members.length / 2) this.becomeFollower(this.term, '');
        break;
      }
      case 'heartbeat':
      case 'append':
      case 'snapshot':
        if (this.role !== 'follower' || this.leader !== from.id) this.becomeFollower(m.term, from.id);
        this.electionElapsed = 0;
        if (m.kind === 'heartbeat') {
          this.setCommit(m.commit);
          this.send(from, 'heartbeat-resp', {});
        } else if (m.kind === 'snapshot') {
          if (m.index > this.commit) {
            this.snapIndex = m.index;
            this.snapTerm = m.snapshot_term;
            this.terms = [];
            this.commit = this.applied = m.index;
            this.emit({ type: 'snapshot', what: 'installed', index: m.index, term: m.snapshot_term });
          }
          this.send(from, 'append-resp', { index: this.last, reject: false });
        } else this.handleAppend(from, m);
        break;
      case 'append-resp':
      case 'heartbeat-resp': {
        if (this.role !== 'leader') break;
        const pr = this.progress.get(from.id);
        if (!pr) break;
        pr.recent = true;
        if (m.kind === 'heartbeat-resp') {
          if (pr.match < this.last) {
            pr.state = 'probe';
            pr.next = pr.match + 1;
            pr.sentProbe = false;
            this.replicate();
          }
        } else if (m.reject) {
          pr.state = 'probe';
          pr.next = Math.max(1, Math.min(pr.next - 1, m.index + 1));
          pr.sentProbe = false;
          this.replicate();
        } else {
          if (m.index > pr.match) pr.match = m.index;
          if (pr.next <= pr.match) pr.next = pr.match + 1;
          pr.state = pr.match >= this.last - MAX_BATCH ? 'replicate' : 'probe';
          pr.sentProbe = false;
          this.maybeCommit();
        }
        break;
      }
      case 'timeout-now':
        this.campaign(false);
        break;
    }
  }

  handleAppend(from, m) {
    if (m.prev_index > this.last || (m.prev_index >= this.snapIndex && this.termAt(m.prev_index) !== m.prev_term)) {
      return this.send(from, 'append-resp', { index: Math.min(this.last, m.prev_index - 1), reject: true });
    }
    let i = m.prev_index + 1;
    let k = 0;
    while (k < m.entries.length && i <= this.last && (i <= this.snapIndex || this.termAt(i) === m.entries[k])) {
      i++;
      k++;
    }
    if (k < m.entries.length) this.write(i, m.entries.slice(k));
    const lastNew = m.prev_index + m.entries.length;
    this.setCommit(Math.min(m.commit, lastNew));
    this.send(from, 'append-resp', { index: lastNew, reject: false });
  }

  // --- the process ---

  kill() {
    this.process = 'killed';
    for (const res of this.clients) res.destroy();
    this.clients.clear();
    this.server?.close();
    for (const s of this.sockets) s.destroy();
    this.server = null;
    // The peers' connections to it reset.
    for (const p of this.others()) {
      if (!p.alive) continue;
      const campaign = p.leader === this.id && p.role === 'follower';
      p.emit({ type: 'peer-lost', peer: this.id, campaign });
      if (campaign) {
        p.leader = '';
        p.electionElapsed = 0;
        p.timeout = 1 + rand(2);
      }
    }
  }

  start() {
    this.process = 'running';
    this.boot();
    this.listen();
  }

  listen() {
    const server = http.createServer((req, res) => serveMember(this, req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.listen(this.port, '127.0.0.1');
    this.server = server;
  }
}

const members = Array.from({ length: N }, (_, i) => new Member(i));
let network = [];
const load = { running: false, rate: 0, written: 0, carry: 0 };

function deliver() {
  const batch = network;
  network = [];
  for (const { from, to, msg } of batch) {
    if (from.cut || to.cut || !from.alive || !to.alive) continue;
    to.receive(from, msg);
  }
}

function leader() {
  return members.filter((m) => m.alive && m.role === 'leader').sort((a, b) => b.term - a.term)[0];
}

setInterval(() => {
  deliver();
  for (const m of members) m.tick();
  if (load.running) {
    load.carry += (load.rate * TICK_MS) / 1000;
    const n = Math.floor(load.carry);
    const l = leader();
    if (n > 0 && l) {
      load.carry -= n;
      l.propose(n);
      load.written += n;
    }
  }
}, TICK_MS);

setInterval(() => {
  for (const m of members) if (m.alive) m.emit(m.view());
}, VIEW_MS);

setInterval(() => {
  for (const m of members) {
    if (m.leftOut) m.emit({ type: 'sampled', count: m.leftOut });
    m.leftOut = 0;
  }
}, 1000);

// --- HTTP ---

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
  res.end(JSON.stringify(body));
}

function cluster(controls) {
  const c = {
    controls,
    members: members.map((m) => ({
      name: m.name,
      id: m.id,
      client_url: `http://127.0.0.1:${m.port}`,
      ...(controls ? { process: m.process, cut: m.cut } : {}),
    })),
  };
  if (controls) c.load = { running: load.running, rate: load.rate, written: load.written };
  return c;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

function servePage(req, res, url) {
  const rel = url.pathname === '/ui' || url.pathname === '/ui/' ? 'index.html' : url.pathname.replace(/^\/ui\//, '');
  const file = path.join(DIST, rel);
  if (!file.startsWith(DIST) || !fs.existsSync(file)) return json(res, 404, { error: 'not found' });
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
  res.end(fs.readFileSync(file));
}

function serveMember(m, req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/ui/events') {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'access-control-allow-origin': '*',
    });
    m.clients.add(res);
    req.on('close', () => m.clients.delete(res));
    res.write(`data: ${JSON.stringify({ type: 'hello', t: Date.now(), id: m.id, name: m.name })}\n\n`);
    res.write(`data: ${JSON.stringify({ ...m.view(), t: Date.now() })}\n\n`);
    return;
  }
  if (url.pathname === '/ui/cluster') return json(res, 200, cluster(false));
  if (url.pathname.startsWith('/ui')) return servePage(req, res, url);
  json(res, 404, { error: 'not found' });
}

function body(req) {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (d) => (s += d));
    req.on('end', () => {
      try {
        resolve(JSON.parse(s || '{}'));
      } catch {
        resolve(null);
      }
    });
  });
}

async function serveDev(req, res) {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (p === '/ui/cluster') return json(res, 200, cluster(true));
  if (p === '/' ) {
    res.writeHead(302, { location: '/ui' });
    return res.end();
  }
  if (p.startsWith('/ui')) return servePage(req, res, url);
  if (req.method !== 'POST') return json(res, 405, { error: 'use POST' });
  const act = p.match(/^\/dev\/members\/([^/]+)\/([a-z]+)$/);
  if (act) {
    const m = members.find((x) => x.name === decodeURIComponent(act[1]));
    if (!m) return json(res, 404, { error: `no member ${act[1]}` });
    const a = act[2];
    const bad = (why) => json(res, 409, { error: why });
    if (a === 'kill') {
      if (m.process === 'killed') return bad(`${m.name} is not running`);
      m.kill();
    } else if (a === 'restart') {
      if (m.process !== 'killed') return bad(`${m.name} is running`);
      m.start();
    } else if (a === 'pause') {
      if (m.process !== 'running') return bad(`${m.name} is not running`);
      m.process = 'paused';
    } else if (a === 'resume') {
      if (m.process !== 'paused') return bad(`${m.name} is not paused`);
      m.process = 'running';
    } else if (a === 'cut') {
      if (m.cut) return bad(`${m.name} is cut already`);
      m.cut = true;
    } else if (a === 'heal') {
      if (!m.cut) return bad(`${m.name} is not cut`);
      m.cut = false;
    } else return json(res, 404, { error: `no action ${a}` });
    return json(res, 200, cluster(true));
  }
  if (p === '/dev/put') {
    const b = await body(req);
    if (!b || typeof b.key !== 'string' || !b.key) return json(res, 400, { error: 'body must be {"key","value"}' });
    if (typeof b.member === 'string') {
      // Through that member alone, once (as `tally dev`): cut off, its entry never commits.
      const m = members.find((x) => x.name === b.member);
      if (!m) return json(res, 404, { error: `no member ${b.member}` });
      if (m.process !== 'running' || m.role !== 'leader') return json(res, 503, { error: `${m.name} is not the leader` });
      const until = Date.now() + 2000;
      const term = m.term;
      const index = m.propose(1);
      while (m.commit < index) {
        if (m.term !== term || m.role !== 'leader') return json(res, 503, { error: `${m.name} stepped down` });
        if (Date.now() > until) return json(res, 503, { error: 'no answer within 2s' });
        await new Promise((r) => setTimeout(r, 10));
      }
      return json(res, 200, { revision: index });
    }
    const deadline = Date.now() + 3000;
    let l;
    while (!(l = leader()) || l.cut) {
      if (Date.now() > deadline) return json(res, 503, { error: 'no leader' });
      await new Promise((r) => setTimeout(r, 20));
    }
    const index = l.propose(1);
    while (l.commit < index) {
      if (Date.now() > deadline || !l.alive || l.role !== 'leader') return json(res, 503, { error: 'write not committed in time' });
      await new Promise((r) => setTimeout(r, 10));
    }
    return json(res, 200, { revision: index });
  }
  if (p === '/dev/load') {
    const b = await body(req);
    const rate = Number(b?.rate);
    if (!Number.isFinite(rate) || rate < 0) return json(res, 400, { error: 'rate must be a number >= 0' });
    load.rate = Math.round(rate);
    load.running = load.rate > 0;
    return json(res, 200, { running: load.running, rate: load.rate, written: load.written });
  }
  json(res, 404, { error: 'not found' });
}

for (const m of members) m.listen();
http.createServer((req, res) => void serveDev(req, res)).listen(PORT, '127.0.0.1', () => {
  console.log(`mock tally dev: http://127.0.0.1:${PORT}/ui (members on ports ${members.map((m) => m.port).join(', ')})`);
});
