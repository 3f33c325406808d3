// The logs, as in the Raft paper's figure 7: one row per member, one cell per entry (its term
// written in it, coloured by term), aligned by index across members. Committed entries are
// solid, uncommitted ones outlined; marks show commit (C) and applied (A), and under each
// follower where the leader thinks its log ends (M: match, N: next). Entries overwritten (a
// diverged log repaired by a new leader) are ringed in white for REPLACED_MS after it happened.
// Each cell carries data-index and data-term ('' where no entry is known) for tests.

import { h, setAttr, setText } from './dom';
import type { Frame } from './frame';
import { shownRole } from './state';

const CELL = 26; // px per index (cell plus gap), as in the CSS
const LABEL = 92; // px of the row label, as in the CSS
const INFO = 170; // px kept for the numbers right of the cells
const MIN_CELLS = 10;
const MAX_CELLS = 60;
/** How long overwritten entries stay highlighted (ms, at the moment shown). */
export const REPLACED_MS = 2500;

interface RowEls {
  row: HTMLElement;
  label: HTMLElement;
  role: HTMLElement;
  cells: HTMLElement[];
  marks: HTMLElement;
  c: HTMLElement;
  a: HTMLElement;
  m: HTMLElement;
  n: HTMLElement;
  info: HTMLElement;
}

export class Logs {
  private rows: RowEls[] = [];
  private header: HTMLElement;
  private heads: HTMLElement[] = [];
  private body: HTMLElement;
  private cellsN = 0;
  /** When a highlight drawn last goes out (page clock; Infinity: none shown): the page
   * should draw the logs again then. */
  expires = Infinity;

  constructor(private root: HTMLElement) {
    this.header = h('div', { class: 'lg-head', 'aria-hidden': 'true' });
    this.body = h('div', { class: 'lg-body' });
    root.append(this.header, this.body);
  }

  private wanted(): number {
    const w = this.root.clientWidth - LABEL - INFO - 20;
    return Math.max(MIN_CELLS, Math.min(MAX_CELLS, Math.floor(w / CELL)));
  }

  private build(f: Frame, n: number): void {
    this.cellsN = n;
    this.rows = [];
    this.body.replaceChildren();
    this.heads = [];
    const hc = h('div', { class: 'lg-cells' });
    for (let k = 0; k < n; k++) {
      const x = h('span', { class: 'lg-idx' });
      this.heads.push(x);
      hc.append(x);
    }
    this.header.replaceChildren(h('span', { class: 'lg-label' }, 'index'), hc);
    for (const m of f.members.list) {
      const role = h('span', { class: 'lg-role' });
      const label = h('span', { class: 'lg-label' }, h('b', {}, m.name), role);
      // The cells are for the eye; the numbers beside them say the same in words.
      const cellsEl = h('div', { class: 'lg-cells', 'aria-hidden': 'true' });
      const cells: HTMLElement[] = [];
      for (let k = 0; k < n; k++) {
        const c = h('span', { class: 'cell' });
        cells.push(c);
        cellsEl.append(c);
      }
      const c = h('span', { class: 'mark mk-c', title: 'commit index' }, 'C');
      const a = h('span', { class: 'mark mk-a', title: 'applied index' }, 'A');
      const mm = h('span', { class: 'mark mk-m', title: 'match index, as the leader sees it' }, 'M');
      const nn = h('span', { class: 'mark mk-n', title: 'next index, as the leader sees it' }, 'N');
      const marks = h('div', { class: 'lg-marks', 'aria-hidden': 'true' }, c, a, mm, nn);
      const info = h('div', { class: 'lg-info' });
      const row = h(
        'div',
        { class: 'lg-row', 'data-testid': `log-${m.name}`, role: 'group', 'aria-label': `${m.name}'s log` },
        label,
        h('div', { class: 'lg-track' }, cellsEl, marks),
        info,
      );
      this.body.append(row);
      this.rows.push({ row, label, role, cells, marks, c, a, m: mm, n: nn, info });
    }
  }

  render(f: Frame): void {
    const n = this.wanted();
    if (n !== this.cellsN || this.rows.length !== f.members.list.length) this.build(f, n);
    const { states } = f;
    let hi = 0;
    for (const s of states) hi = Math.max(hi, s.lastIndex);
    // One empty column past the longest log: where the next entry goes (and next indexes point).
    const lo = Math.max(1, hi + 2 - n);
    for (let k = 0; k < n; k++) {
      const idx = lo + k;
      setText(this.heads[k], idx % 5 === 0 || k === 0 ? String(idx) : '');
    }
    const leader = f.leader >= 0 ? states[f.leader] : null;
    this.expires = Infinity;
    for (let i = 0; i < this.rows.length; i++) {
      const r = this.rows[i];
      const s = states[i];
      const role = shownRole(s);
      const rp = s.replaced && f.t >= s.replaced.at && f.t - s.replaced.at < REPLACED_MS ? s.replaced : null;
      if (rp) this.expires = Math.min(this.expires, rp.at + REPLACED_MS);
      setAttr(r.row, 'class', `lg-row r-${role}`);
      setText(r.role, role);
      for (let k = 0; k < n; k++) {
        const idx = lo + k;
        const cell = r.cells[k];
        let cls: string;
        let text = '';
        let termAttr = '';
        if (idx > s.lastIndex || !s.known) cls = 'cell none';
        else {
          const term = s.log.get(idx);
          if (term === undefined) {
            cls = idx <= s.snapshotIndex ? 'cell snap' : 'cell gap';
            text = idx <= s.snapshotIndex ? 's' : '·';
          } else {
            cls = `cell t${term % 8}${idx <= s.commit ? '' : ' uc'}${idx <= s.applied ? ' ap' : ''}`;
            text = String(term);
            termAttr = text;
          }
          if (rp && idx >= rp.from && idx <= rp.to) cls += ' rp';
        }
        setAttr(cell, 'class', cls);
        setText(cell, text);
        setAttr(cell, 'data-index', String(idx));
        setAttr(cell, 'data-term', termAttr);
      }
      this.mark(r.c, 'C', 0, 0, s.commit, lo, n, s.known);
      this.mark(r.a, 'A', 0, 1, s.applied, lo, n, s.known && s.applied !== s.commit);
      const pr = leader && leader !== s ? leader.progress.find((p) => p.id === f.members.list[i].id) : undefined;
      this.mark(r.m, 'M', 1, 0, pr ? pr.match : 0, lo, n, !!pr);
      this.mark(r.n, 'N', 1, 1, pr ? pr.next : 0, lo, n, !!pr);
      const info = s.known
        ? `last ${s.lastIndex} · commit ${s.commit}\napplied ${s.applied}` +
          (rp ? ` · replaced ${rp.from}${rp.to > rp.from ? `–${rp.to}` : ''}` : '') +
          (pr ? `\nmatch ${pr.match} · next ${pr.next}${pr.state && pr.state !== 'replicate' ? ` · ${pr.state}` : ''}${pr.active === false ? ' · inactive' : ''}` : '')
        : 'no data';
      setText(r.info, info);
    }
  }

  /** Places a mark under index `idx`; outside the window, at its edge with an arrow and the
   * index (`slot` keeps two such marks of a line apart). */
  private mark(el: HTMLElement, letter: string, line: number, slot: number, idx: number, lo: number, n: number, show: boolean): void {
    if (!show || idx <= 0) {
      setAttr(el, 'style', 'display:none');
      return;
    }
    const k = idx - lo;
    const top = `top:${line * 14 + 2}px;`;
    if (k < 0) {
      setAttr(el, 'style', `${top}left:${slot * 66}px`);
      setText(el, `◀ ${letter} ${idx}`);
    } else if (k >= n) {
      setAttr(el, 'style', `${top}right:${(1 - slot) * 66}px`);
      setText(el, `${letter} ${idx} ▶`);
    } else {
      setAttr(el, 'style', `${top}left:${k * CELL + slot * 11 + 2}px`);
      setText(el, letter);
    }
  }
}
