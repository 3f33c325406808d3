// One card per member: role, term, whom it follows, when it last heard its leader, its log's
// indexes, its process, and (under `tally dev`) the buttons that act on it.
// The card carries the attributes end-to-end tests read (data-role, data-term, ...).

import type { MemberAction } from './api';
import { age, stale, h, setAttr, setText, toggleAttr } from './dom';
import type { Frame } from './frame';
import { shownRole, type MState } from './state';

const ACTIONS: { action: MemberAction; label: string; title: string }[] = [
  { action: 'kill', label: 'Kill', title: 'Stop the process (SIGKILL)' },
  { action: 'restart', label: 'Restart', title: 'Start the killed process again' },
  { action: 'pause', label: 'Pause', title: 'Freeze the process (SIGSTOP)' },
  { action: 'resume', label: 'Resume', title: 'Let the paused process run (SIGCONT)' },
  { action: 'cut', label: 'Cut', title: 'Drop all its traffic to and from its peers (a partition)' },
  { action: 'heal', label: 'Heal', title: 'Restore its peer traffic' },
];

interface CardEls {
  card: HTMLElement;
  role: HTMLElement;
  term: HTMLElement;
  follows: HTMLElement;
  heard: HTMLElement;
  log: HTMLElement;
  proc: HTMLElement;
  buttons: Map<MemberAction, HTMLButtonElement>;
  error: HTMLElement;
}

export class Cards {
  private cards: CardEls[] = [];
  private busy = new Set<string>();
  controls = false;

  constructor(
    private root: HTMLElement,
    private act: (name: string, action: MemberAction) => Promise<void>,
  ) {}

  private add(name: string): void {
    const role = h('span', { class: 'badge' });
    const term = h('span', { class: 'term' });
    const follows = h('dd');
    const heard = h('dd');
    const log = h('dd', { class: 'num' });
    const proc = h('dd');
    const error = h('p', { class: 'error', role: 'alert' });
    const buttons = new Map<MemberAction, HTMLButtonElement>();
    const group = h('div', { class: 'buttons', role: 'group', 'aria-label': `Controls for ${name}` });
    for (const a of ACTIONS) {
      const b = h('button', { type: 'button', 'data-testid': `${a.action}-${name}`, 'aria-label': `${a.label} ${name}`, title: a.title }, a.label);
      b.classList.add(`b-${a.action}`);
      b.addEventListener('click', () => this.click(name, a.action, error));
      buttons.set(a.action, b);
      group.append(b);
    }
    const hid = `card-${name}`;
    const card = h(
      'article',
      { class: 'card', 'data-testid': `member-${name}`, 'aria-labelledby': hid },
      h('header', {}, h('h3', { id: hid }, name), role, term),
      h(
        'dl',
        {},
        h('div', {}, h('dt', {}, 'follows'), follows),
        h('div', {}, h('dt', {}, 'heard'), heard),
        h('div', { class: 'wide' }, h('dt', {}, 'log'), log),
        h('div', { class: 'wide' }, h('dt', {}, 'process'), proc),
      ),
      group,
      error,
    );
    this.root.append(card);
    this.cards.push({ card, role, term, follows, heard, log, proc, buttons, error });
  }

  private async click(name: string, action: MemberAction, error: HTMLElement): Promise<void> {
    this.busy.add(name);
    setText(error, '');
    try {
      await this.act(name, action);
    } catch (err) {
      setText(error, `${action} failed: ${(err as Error).message}`);
    } finally {
      this.busy.delete(name);
    }
  }

  /** `liveStates`: the buttons act on the present, whatever moment the view shows. */
  render(f: Frame, liveStates: MState[]): void {
    const list = f.members.list;
    while (this.cards.length < list.length) this.add(list[this.cards.length].name);
    for (let i = 0; i < this.cards.length; i++) this.renderCard(f, i, f.states[i], liveStates[i]);
  }

  private renderCard(f: Frame, i: number, st: MState, now: MState): void {
    const c = this.cards[i];
    const name = f.members.list[i].name;
    const role = shownRole(st);
    const leaderName = f.members.name(st.leader);
    const el = c.card;
    setAttr(el, 'class', `card r-${role}${f.leader === i ? ' current' : ''}`);
    setAttr(el, 'data-role', role);
    setAttr(el, 'data-term', String(st.term));
    setAttr(el, 'data-leader', role === 'down' ? '' : leaderName);
    setAttr(el, 'data-process', st.process);
    setAttr(el, 'data-cut', String(st.cut));
    setAttr(el, 'data-last-index', String(st.lastIndex));
    setAttr(el, 'data-commit', String(st.commit));
    setAttr(el, 'data-applied', String(st.applied));
    setText(c.role, role);
    setText(c.term, st.known ? `term ${st.term}` : 'no data yet');
    setText(
      c.follows,
      role === 'leader' ? 'itself (leads)' : role === 'down' ? '—' : leaderName || (st.known ? 'nobody' : '—'),
    );
    let heard = '—';
    const since = Math.max(0, f.t - st.heardAt);
    if (role === 'down') {
      heard = '—';
    } else if (st.role === 'leader' && st.heard.length) {
      heard = st.heard
        .filter((x) => x.id !== f.members.list[i].id)
        .map((x) => `${f.members.name(x.id)} ${age(x.ms + stale(since))}`)
        .join(', ');
    } else if (st.leader && st.role !== 'leader') {
      const x = st.heard.find((y) => y.id === st.leader);
      if (x) heard = `${leaderName} ${age(x.ms + stale(since))} ago`;
    }
    setText(c.heard, heard || '—');
    setText(c.log, st.known ? `last ${st.lastIndex} · commit ${st.commit} · applied ${st.applied}` : '—');
    const proc: string[] = [];
    if (st.process !== 'unknown') proc.push(st.process);
    if (st.cut) proc.push('cut off from peers');
    proc.push(st.up ? 'stream up' : 'unreachable');
    setText(c.proc, proc.join(' · '));
    setAttr(c.proc, 'class', st.up && !st.cut && st.process !== 'killed' && st.process !== 'paused' ? '' : 'bad');

    const group = c.buttons.get('kill')!.parentElement!;
    toggleAttr(group, 'hidden', !this.controls);
    if (!this.controls) return;
    const busy = this.busy.has(name);
    const p = now.process;
    const enabled: Record<MemberAction, boolean> = {
      kill: p === 'running' || p === 'paused',
      restart: p === 'killed',
      pause: p === 'running',
      resume: p === 'paused',
      cut: !now.cut,
      heal: now.cut,
    };
    for (const [a, b] of c.buttons) {
      const off = busy || !enabled[a];
      if (b.disabled !== off) b.disabled = off;
    }
  }
}
