#!/usr/bin/env node
// End-to-end scenarios for Tally's live view of Raft, against a running `tally dev` (3 members).
//
//   cd tests/ui && npm ci
//   tally dev &                     # serves the page at http://127.0.0.1:2378/ui
//   node tests/ui/scenarios.mjs --url http://127.0.0.1:2378/ui --out /tmp/ui-shots
//
// Drives /usr/bin/chromium (headless) through playwright-core: every scenario clicks the page's
// own controls and asserts what the page then shows (the data-* hooks of the member cards), so
// it tests the page, the members' event streams and `tally dev`'s controls together. Each
// scenario saves `<out>/<nn>-<name>.png` (on failure too), some also `<out>/<nn>-<name>-<what>.png`
// on the way; `<out>/readme.png` is the page under load. Prints one line per scenario; exits 1 if any failed. `--only a,b` runs just those.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  if (i + 1 >= args.length) usage(`--${name} needs a value`);
  return args[i + 1];
}
function usage(why) {
  console.error(`${why}\nusage: node tests/ui/scenarios.mjs --url http://127.0.0.1:2378/ui --out <dir> [--only a,b]`);
  process.exit(2);
}
const URL_ = opt('url');
const OUT = opt('out');
if (!URL_ || !OUT) usage('--url and --out are needed');
const ONLY = opt('only', '')
  .split(',')
  .filter(Boolean);
const ORIGIN = new URL(URL_).origin;
fs.mkdirSync(OUT, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- reading the page ---

/** Every member card's hooks. */
async function cards(page) {
  return page.$$eval('[data-testid^="member-"]', (els) =>
    els.map((el) => ({
      name: el.getAttribute('data-testid').slice('member-'.length),
      role: el.getAttribute('data-role'),
      term: Number(el.getAttribute('data-term')),
      leader: el.getAttribute('data-leader') ?? '',
      process: el.getAttribute('data-process'),
      cut: el.getAttribute('data-cut') === 'true',
      last: Number(el.getAttribute('data-last-index')),
      commit: Number(el.getAttribute('data-commit')),
      applied: Number(el.getAttribute('data-applied')),
    })),
  );
}

function show(ms) {
  return ms
    .map((m) => `${m.name}:${m.role}/t${m.term}${m.leader ? `→${m.leader}` : ''} last=${m.last} commit=${m.commit} ${m.process}${m.cut ? ' cut' : ''}`)
    .join('; ');
}

/** Polls the cards until `test(cards)` returns something truthy (returned), or fails. */
async function until(page, what, ms, test) {
  const deadline = Date.now() + ms;
  let last = [];
  for (;;) {
    last = await cards(page);
    const v = test(last, (name) => last.find((m) => m.name === name));
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms / 1000} s: ${what} (cards: ${show(last)})`);
    await sleep(50);
  }
}

const by = (ms, name) => ms.find((m) => m.name === name);
const leaders = (ms) => ms.filter((m) => m.role === 'leader');
/** The single leader all the others follow, every member up and in the same term. */
function settled(ms) {
  const ls = leaders(ms);
  if (ls.length !== 1) return null;
  const l = ls[0];
  return ms.every((m) => m === l || (m.role === 'follower' && m.leader === l.name && m.term === l.term)) ? l : null;
}

// --- acting ---

async function click(page, testid) {
  const b = page.locator(`[data-testid="${testid}"]`);
  await b.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {
    throw new Error(`button ${testid} not shown (is the page served by \`tally dev\`, with controls?)`);
  });
  // Enabled once the page knows the process state the action needs.
  const deadline = Date.now() + 5000;
  while (await b.isDisabled()) {
    if (Date.now() > deadline) throw new Error(`button ${testid} stayed disabled`);
    await sleep(50);
  }
  await b.click();
}

/** `tally dev`'s API from the page (only to tidy up between scenarios). */
async function dev(page, p, body) {
  return page.evaluate(
    async ([url, body]) => {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: await r.text() };
    },
    [ORIGIN + p, body],
  );
}

/** Fills the put form and submits it, through `member` ('' for any member), without waiting
 * for the answer: each put gets its own line in put-result, `[data-key=<key>]`. */
async function startPut(page, key, value, member = '') {
  await page.fill('[data-testid="put-key"]', key);
  await page.fill('[data-testid="put-value"]', value);
  await page.selectOption('[data-testid="put-member"]', member);
  await page.click('[data-testid="put-submit"]');
}

/** The answer the page shows for the put of `key`: `{state: waiting|ok|error, text}`. */
async function putLine(page, key) {
  return page.evaluate((key) => {
    const el = [...document.querySelectorAll('[data-testid="put-result"] [data-key]')].find((e) => e.getAttribute('data-key') === key);
    return el ? { state: el.getAttribute('data-state'), text: el.textContent ?? '' } : { state: '', text: '' };
  }, key);
}

/** Waits until the put of `key` is answered (not "waiting…"), for at most `ms`. */
async function putAnswer(page, key, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = await putLine(page, key);
    if (line.state === 'ok' || line.state === 'error') return line;
    const all = (await page.textContent('[data-testid="put-result"]')) ?? '';
    if (Date.now() > deadline) throw new Error(`put ${key}: no answer within ${ms / 1000} s (put-result: ${all})`);
    await sleep(20);
  }
}

async function putViaForm(page, key, value, member = '') {
  await startPut(page, key, value, member);
  const line = await putAnswer(page, key, 10_000);
  if (line.state !== 'ok' || !/revision \d+/.test(line.text)) throw new Error(`put ${key}: ${line.text}`);
}

/** The terms in `name`'s log row by index (only the indexes the logs panel shows). */
async function logTerms(page, name) {
  return page.$$eval(`[data-testid="log-${name}"] .cell[data-index]`, (els) =>
    Object.fromEntries(els.map((el) => [el.getAttribute('data-index'), { term: el.getAttribute('data-term'), replaced: el.classList.contains('rp') }])),
  );
}

/** Back to a healthy cluster: nothing cut, paused or killed, one leader followed by all. */
async function tidy(page) {
  const cluster = JSON.parse(await page.evaluate(async (u) => (await fetch(u)).text(), ORIGIN + '/ui/cluster'));
  for (const m of cluster.members) {
    if (m.cut) await dev(page, `/dev/members/${m.name}/heal`);
    if (m.process === 'paused') await dev(page, `/dev/members/${m.name}/resume`);
    if (m.process === 'killed') await dev(page, `/dev/members/${m.name}/restart`);
  }
  if (cluster.load?.running) await dev(page, '/dev/load', { rate: 0 });
  await until(page, 'a settled cluster (one leader, followed by all)', 20_000, settled);
}

// --- scenarios ---

const scenarios = [];
const scenario = (name, run) => scenarios.push({ name, run });
const notes = {};

scenario('three-members', async (page) => {
  await until(page, 'three member cards', 10_000, (ms) => ms.length === 3);
  const l = await until(page, 'exactly one leader, every member in its term', 10_000, (ms) => {
    const ls = leaders(ms);
    return ls.length === 1 && ms.every((m) => m.term === ls[0].term && m.role !== 'down') ? ls[0] : null;
  });
  const shown = (await page.textContent('[data-testid="leader"]'))?.trim();
  if (shown !== l.name) throw new Error(`[data-testid=leader] says "${shown}", the cards say ${l.name}`);
  return `leader ${l.name}, term ${l.term}`;
});

scenario('leader-crash', async (page) => {
  const L = await until(page, 'a settled cluster', 10_000, settled);
  const T = L.term;
  notes.crash = { leader: L.name, term: T, at: await page.evaluate(() => performance.timeOrigin + performance.now()) };
  const t0 = Date.now();
  await click(page, `kill-${L.name}`);
  const N = await until(page, `a new leader with a term above ${T} after killing ${L.name}`, 2000, (ms) =>
    ms.find((m) => m.name !== L.name && m.role === 'leader' && m.term > T),
  );
  const failover = Date.now() - t0;
  await until(page, `${L.name} shown killed and down`, 3000, (ms, get) => get(L.name).process === 'killed' && get(L.name).role === 'down');
  await click(page, `restart-${L.name}`);
  await until(page, `${L.name} back as a follower of ${N.name}`, 15_000, (ms, get) => {
    const m = get(L.name);
    const n = get(N.name);
    return m.role === 'follower' && m.leader === n.name && n.role === 'leader' && m.term === n.term;
  });
  return `${L.name} killed in term ${T}; ${N.name} led term ${N.term} after ${failover} ms`;
});

scenario('timeline-rewind', async (page) => {
  const c = notes.crash;
  if (!c) throw new Error('needs leader-crash first');
  // Back to just before the kill: the old leader leads again, in its old term.
  await page.locator('[data-testid="timeline-pause"]').click();
  await page.evaluate((at) => {
    const s = document.querySelector('[data-testid="timeline-slider"]');
    s.value = String(Math.floor(at - 50));
    s.dispatchEvent(new Event('input', { bubbles: true }));
  }, c.at);
  await until(page, `${c.leader} shown as leader of term ${c.term} before the kill`, 2000, (ms, get) => {
    const m = get(c.leader);
    return m.role === 'leader' && m.term === c.term && m.process === 'running';
  });
  // Step forward event by event until the kill shows.
  let steps = 0;
  while (steps < 20000) {
    const m = by(await cards(page), c.leader);
    if (m.role === 'down') break;
    await page.locator('[data-testid="timeline-forward"]').click();
    steps++;
  }
  if (steps >= 20000) throw new Error(`stepping forward never showed ${c.leader} down`);
  await page.screenshot({ path: path.join(OUT, 'timeline-rewound.png') });
  await page.locator('[data-testid="timeline-live"]').click();
  await until(page, 'live again: one settled leader', 3000, settled);
  return `rewound to ${c.leader} leading term ${c.term}; ${steps} step(s) forward to its kill`;
});

scenario('partition-catch-up', async (page) => {
  const L = await until(page, 'a settled cluster', 10_000, settled);
  const F = (await cards(page)).find((m) => m.role === 'follower');
  await click(page, `cut-${F.name}`);
  await until(page, `${F.name} shown cut`, 3000, (ms, get) => get(F.name).cut);
  const before = await cards(page);
  const l0 = by(before, L.name).last;
  const f0 = by(before, F.name).last;
  for (let i = 0; i < 20; i++) await putViaForm(page, `ui-partition-${Date.now()}-${i}`, `v${i}`);
  const grown = await until(page, `${L.name}'s log to grow by 20 while ${F.name}'s stays`, 3000, (ms, get) =>
    get(L.name).role === 'leader' && get(L.name).last >= l0 + 20 ? ms : null,
  );
  if (by(grown, F.name).last !== f0) throw new Error(`${F.name}'s last index moved while cut: ${f0} → ${by(grown, F.name).last}`);
  await page.screenshot({ path: path.join(OUT, 'partition-cut.png') });
  const t0 = Date.now();
  await click(page, `heal-${F.name}`);
  await until(page, `${F.name} caught up with ${L.name} (last index and commit)`, 5000, (ms, get) => {
    const l = get(L.name);
    const f = get(F.name);
    return !f.cut && f.last === l.last && f.commit === l.commit && f.last >= l0 + 20;
  });
  return `${F.name} cut at ${f0}; leader ${L.name} went ${l0} → ${by(grown, L.name).last}; caught up ${Date.now() - t0} ms after heal`;
});

scenario('old-leader-steps-down', async (page) => {
  const L = await until(page, 'a settled cluster', 10_000, settled);
  const T = L.term;
  await click(page, `cut-${L.name}`);
  let staleSeen = false;
  const N = await until(page, `the others to elect a leader with a term above ${T}`, 3000, (ms, get) => {
    const n = ms.find((m) => m.name !== L.name && m.role === 'leader' && m.term > T);
    if (n && get(L.name).role === 'leader') staleSeen = true;
    return n;
  });
  // Cut off, the old leader cannot have learnt of the new term (with check-quorum it may
  // already have stepped down in its own, old term).
  const old = by(await cards(page), L.name);
  if (old.term >= N.term) throw new Error(`${L.name} is in term ${old.term} while cut off, expected below ${N.term}`);
  await page.screenshot({ path: path.join(OUT, 'old-leader-cut.png') });
  await click(page, `heal-${L.name}`);
  await until(page, `${L.name} a follower of ${N.name} in term ${N.term} or later`, 3000, (ms, get) => {
    const m = get(L.name);
    return m.role === 'follower' && m.term >= N.term && m.leader !== '' && m.leader !== L.name;
  });
  return `${L.name} cut in term ${T} (${staleSeen ? 'still claiming leadership' : 'already stepped down'} when ${N.name} won term ${N.term})`;
});

/** Cuts leader `L` off and at once writes a key through it alone, with the page's form (the
 * write must reach L after the cut, else it commits, and before L, cut off, steps down:
 * check-quorum, from about one election timeout on, 150 ms by default). So the form is filled
 * beforehand and Put clicked, in the page, as soon as the page shows L cut; the answer is not
 * waited for (it comes when tally dev gives up, ~2 s). Returns the key, the delay between the
 * two clicks and L's card once its log holds the write past its commit; null if L stepped down
 * first (nothing stranded: the caller heals and tries again). */
async function strandWrite(page, L) {
  const key = `ui-stranded-${Date.now()}`;
  await page.fill('[data-testid="put-key"]', key);
  await page.fill('[data-testid="put-value"]', 'lost');
  await page.selectOption('[data-testid="put-member"]', L);
  await page.waitForSelector(`[data-testid="cut-${L}"]:not([disabled])`, { timeout: 5000 });
  const gap = await page.evaluate(async (name) => {
    const card = document.querySelector(`[data-testid="member-${name}"]`);
    const t0 = performance.now();
    document.querySelector(`[data-testid="cut-${name}"]`).click();
    while (card.getAttribute('data-cut') !== 'true') {
      if (performance.now() - t0 > 3000) return -1;
      await new Promise((r) => setTimeout(r, 1));
    }
    document.querySelector('[data-testid="put-submit"]').click();
    return Math.round(performance.now() - t0);
  }, L);
  if (gap < 0) throw new Error(`${L} not shown cut within 3 s of clicking cut-${L}`);
  const card = await until(page, `${L}'s log to hold the write past its commit, or ${L} to step down`, 1500, (ms, get) => {
    const m = get(L);
    return m.last > m.commit ? m : null;
  }).catch(() => null);
  return card && { key, gap, card };
}

scenario('follower-repair', async (page, { shot }) => {
  let L;
  let T;
  let d = null;
  let tries = 0;
  while (!d) {
    if (++tries > 3) throw new Error(`the write through the cut-off leader never stayed in its log (${tries - 1} tries)`);
    if (tries > 1) await tidy(page);
    L = await until(page, 'a settled cluster', 10_000, settled);
    T = L.term;
    d = await strandWrite(page, L.name);
  }
  const { key: stranded, gap } = d;
  const S = d.card.last;
  const deadline = Date.now() + 2000;
  for (;;) {
    const cell = (await logTerms(page, L.name))[S];
    if (cell && Number(cell.term) === T) break;
    if (Date.now() > deadline) throw new Error(`${L.name}'s log cell ${S} shows term ${cell?.term}, expected ${T}`);
    await sleep(50);
  }
  await page.screenshot({ path: shot('diverged') });
  const N = await until(page, `the others to elect a leader with a term above ${T}`, 5000, (ms) =>
    ms.find((m) => m.name !== L.name && m.role === 'leader' && m.term > T),
  );
  for (let i = 0; i < 3; i++) await putViaForm(page, `ui-repair-${Date.now()}-${i}`, `v${i}`);
  // Healed before it gave up, L would pass the write on to the new leader, where it commits.
  const answer = await putAnswer(page, stranded, 5000);
  if (answer.state !== 'error' || !/failed/.test(answer.text)) throw new Error(`the put through cut-off ${L.name} did not fail: ${answer.text}`);
  await click(page, `heal-${L.name}`);
  const t0 = Date.now();
  let highlighted = false;
  let now = null;
  for (;;) {
    const ms = await cards(page);
    const l = by(ms, L.name);
    const n = by(ms, N.name);
    const mine = (await logTerms(page, L.name))[S];
    const theirs = (await logTerms(page, N.name))[S];
    if (mine?.replaced) highlighted = true;
    const repaired =
      l.role === 'follower' && l.leader === N.name && n.role === 'leader' && l.term === n.term && l.last === n.last &&
      mine && theirs && mine.term === theirs.term && Number(mine.term) > T;
    if (repaired) {
      now = Number(mine.term);
      break;
    }
    if (Date.now() - t0 > 5000) {
      throw new Error(
        `not within 5 s of healing: ${L.name} following ${N.name} with its log, cell ${S} in a term above ${T} ` +
          `(cards: ${show(ms)}; cell ${S}: ${L.name} ${mine?.term}, ${N.name} ${theirs?.term})`,
      );
    }
    await sleep(50);
  }
  const repairMs = Date.now() - t0;
  // The highlight lasts 2.5 s: seen by now, or on the next few polls.
  for (let k = 0; !highlighted && k < 20; k++) {
    highlighted = !!(await logTerms(page, L.name))[S]?.replaced;
    if (!highlighted) await sleep(25);
  }
  if (!highlighted) throw new Error(`${L.name}'s cell ${S} was never shown as replaced (no .rp highlight)`);
  const said = `${L.name}: entries from ${S} replaced (term ${T} → ${now})`;
  const events = (await page.textContent('[data-testid="events"]')) ?? '';
  if (!events.includes(said)) throw new Error(`the event list does not say "${said}"`);
  return `${L.name} cut, written through ${gap} ms later${tries > 1 ? ` (try ${tries})` : ''}: stranded ${S}@${T}; ${N.name} led term ${N.term}; repaired to ${S}@${now} ${repairMs} ms after heal; put said "${answer.text}"`;
});

scenario('quorum-loss', async (page) => {
  const L = await until(page, 'a settled cluster', 10_000, settled);
  const followers = (await cards(page)).filter((m) => m.name !== L.name);
  for (const f of followers) await click(page, `cut-${f.name}`);
  await until(page, `no leader once ${followers.map((f) => f.name).join(' and ')} are cut off (check-quorum)`, 3000, (ms) => leaders(ms).length === 0);
  const shown = (await page.textContent('[data-testid="leader"]'))?.trim();
  if (shown) throw new Error(`[data-testid=leader] still says "${shown}"`);
  await page.screenshot({ path: path.join(OUT, 'quorum-lost.png') });
  for (const f of followers) await click(page, `heal-${f.name}`);
  const N = await until(page, 'a leader again after healing', 5000, settled);
  return `${L.name} stepped down without a quorum; ${N.name} leads term ${N.term} after healing`;
});

scenario('paused-follower', async (page) => {
  const L = await until(page, 'a settled cluster', 10_000, settled);
  const F = (await cards(page)).find((m) => m.role === 'follower');
  await click(page, `pause-${F.name}`);
  await until(page, `${F.name} shown paused and down`, 3000, (ms, get) => get(F.name).process === 'paused' && get(F.name).role === 'down');
  const l0 = by(await cards(page), L.name).commit;
  for (let i = 0; i < 5; i++) await putViaForm(page, `ui-paused-${Date.now()}-${i}`, `v${i}`);
  await until(page, `${L.name} committing without ${F.name}`, 3000, (ms, get) => get(L.name).commit >= l0 + 5);
  await click(page, `resume-${F.name}`);
  await until(page, `${F.name} caught up after resuming`, 5000, (ms, get) => {
    const f = get(F.name);
    const l = get(L.name);
    return f.role === 'follower' && f.process === 'running' && f.last === l.last && f.commit === l.commit;
  });
  return `${L.name} committed 5 writes while ${F.name} was paused; ${F.name} caught up`;
});

// --- running them ---

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(URL_, { waitUntil: 'load' });
  let n = 0;
  for (const sc of scenarios) {
    n++;
    if (ONLY.length && !ONLY.includes(sc.name)) continue;
    const shot = path.join(OUT, `${String(n).padStart(2, '0')}-${sc.name}.png`);
    const t0 = Date.now();
    try {
      if (sc.name !== 'three-members' && sc.name !== 'timeline-rewind') await tidy(page);
      const said = await sc.run(page, { shot: (what) => path.join(OUT, `${String(n).padStart(2, '0')}-${sc.name}-${what}.png`) });
      if (errors.length) throw new Error(`page errors: ${errors.splice(0).join(' | ')}`);
      await page.screenshot({ path: shot });
      console.log(`ok    ${sc.name.padEnd(22)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${said ?? ''}`);
    } catch (err) {
      failed++;
      await page.screenshot({ path: shot }).catch(() => {});
      console.log(`FAIL  ${sc.name.padEnd(22)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${err.message}`);
      await page.locator('[data-testid="timeline-live"]').click().catch(() => {});
    }
  }
  // The README's picture: the page under a steady load.
  if (!ONLY.length || ONLY.includes('readme')) {
    const t0 = Date.now();
    try {
      await tidy(page);
      await page.fill('[data-testid="load-rate"]', '200');
      await click(page, 'load-start');
      await sleep(2000);
      const written = Number((await page.textContent('[data-testid="load-written"]'))?.replace(/\D/g, ''));
      await page.screenshot({ path: path.join(OUT, 'readme.png') });
      await click(page, 'load-stop');
      if (!(written > 0)) throw new Error(`load-written shows ${written} after 2 s at 200 writes/s`);
      console.log(`ok    ${'readme'.padEnd(22)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${written} writes shown`);
    } catch (err) {
      failed++;
      console.log(`FAIL  ${'readme'.padEnd(22)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${err.message}`);
    }
  }
} finally {
  await browser.close();
}
console.log(failed ? `${failed} failed; screenshots in ${OUT}` : `all passed; screenshots in ${OUT}`);
process.exit(failed ? 1 : 0);
