// The timeline: live, or paused at one event (the cursor) of the last minutes; a slider over
// time and buttons stepping one event back or forward.

import { sentence } from './describe';
import { age, clock, setAttr, setText } from './dom';
import type { Members } from './members';
import { now, type Store } from './store';

export class Timeline {
  live = true;
  /** The last event shown when not live. */
  cursor = -1;
  /** Bumped whenever what is shown changes by the user's hand. */
  version = 0;

  constructor(
    private store: Store,
    private members: Members,
    private els: {
      slider: HTMLInputElement;
      live: HTMLButtonElement;
      pause: HTMLButtonElement;
      back: HTMLButtonElement;
      forward: HTMLButtonElement;
      where: HTMLElement;
      what: HTMLElement;
    },
  ) {
    els.live.addEventListener('click', () => this.goLive());
    els.pause.addEventListener('click', () => this.pause());
    els.back.addEventListener('click', () => this.step(-1));
    els.forward.addEventListener('click', () => this.step(1));
    els.slider.addEventListener('input', () => this.seekTime(Number(els.slider.value)));
    els.slider.addEventListener('keydown', (ev) => {
      const keys: Record<string, () => void> = {
        ArrowLeft: () => this.step(-1),
        ArrowDown: () => this.step(-1),
        ArrowRight: () => this.step(1),
        ArrowUp: () => this.step(1),
        PageDown: () => this.seekTime(this.shownAt() - 1000),
        PageUp: () => this.seekTime(this.shownAt() + 1000),
        Home: () => this.seek(this.store.base),
        End: () => this.goLive(),
      };
      const f = keys[ev.key];
      if (f) {
        ev.preventDefault();
        f();
      }
    });
  }

  /** The last event shown. */
  shownSeq(): number {
    return this.live ? this.store.end - 1 : this.cursor;
  }

  /** The moment shown, on the page clock. */
  shownAt(): number {
    if (this.live) return now();
    return this.store.get(this.cursor)?.at ?? now();
  }

  goLive(): void {
    this.live = true;
    this.version++;
  }

  pause(): void {
    if (!this.live) return;
    this.seek(this.store.end - 1);
  }

  seek(seq: number): void {
    this.live = false;
    this.cursor = Math.max(this.store.base, Math.min(this.store.end - 1, seq));
    this.version++;
  }

  seekTime(at: number): void {
    this.seek(this.store.seqAt(at));
  }

  step(d: number): void {
    const from = this.live ? this.store.end - 1 : this.cursor;
    this.seek(from + d);
  }

  /** Keeps the cursor on a kept event; updates the controls. */
  render(): void {
    const { store, els } = this;
    if (!this.live && this.cursor < store.base) {
      this.cursor = store.base;
      this.version++;
    }
    const first = store.recs.length ? store.recs[0].at : now();
    const end = now();
    const at = this.shownAt();
    setAttr(els.slider, 'min', String(Math.floor(first)));
    setAttr(els.slider, 'max', String(Math.ceil(end)));
    const v = String(Math.round(this.live ? end : at));
    if (document.activeElement !== els.slider || this.live) {
      if (els.slider.value !== v) els.slider.value = v;
    }
    setAttr(els.slider, 'aria-valuetext', this.live ? 'live' : `${age(end - at)} ago, at ${clock(Date.now() - (end - at))}`);
    setAttr(els.live, 'aria-pressed', String(this.live));
    setAttr(els.pause, 'aria-pressed', String(!this.live));
    const canBack = (this.live ? store.end - 1 : this.cursor) > store.base;
    const canFwd = !this.live && this.cursor < store.end - 1;
    if (els.back.disabled === canBack) els.back.disabled = !canBack;
    if (els.forward.disabled === canFwd) els.forward.disabled = !canFwd;
    document.body.classList.toggle('past', !this.live);
    const kept = store.recs.length;
    if (this.live) {
      setText(els.where, `Live · ${kept.toLocaleString('en')} events kept (${age(end - first)})`);
      setText(els.what, '');
    } else {
      const r = store.get(this.cursor);
      setText(
        els.where,
        `Paused at event ${(this.cursor - store.base + 1).toLocaleString('en')} of ${kept.toLocaleString('en')} · ${r ? clock(r.e.t) : ''} (${age(end - at)} ago)`,
      );
      const s = r ? sentence(r, this.members) : null;
      setText(els.what, s ? s[0] : '');
    }
  }
}
