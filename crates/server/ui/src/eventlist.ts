// The event list: notable events as sentences, newest first, up to the moment shown.

import { sentence } from './describe';
import { clock, h } from './dom';
import type { Members } from './members';
import { lastAtOrBefore, type Store } from './store';

const SHOWN = 150;

export class EventList {
  /** Seqs of the items shown, newest first. */
  private shown: number[] = [];

  constructor(
    private root: HTMLOListElement,
    private store: Store,
    private members: Members,
  ) {}

  private item(seq: number): HTMLLIElement {
    const r = this.store.get(seq);
    const [text, tone] = (r && sentence(r, this.members)) || [r ? r.e.type : 'forgotten', 'info'];
    const t = r ? r.e.t : 0;
    return h('li', { class: `ev tone-${tone}`, 'data-seq': seq }, h('time', {}, clock(t)), h('span', {}, text));
  }

  /** Shows the notes at or before `cursor` (the last seq shown). */
  render(cursor: number): void {
    const notes = this.store.notes;
    const end = lastAtOrBefore(notes, cursor) + 1;
    const start = Math.max(0, end - SHOWN);
    const newest = end > 0 ? notes[end - 1] : -1;
    const top = this.shown.length ? this.shown[0] : -1;
    if (newest === top && (this.shown.length === end - start || this.shown.length >= SHOWN)) {
      // Unchanged at the top; drop items forgotten by the store.
      while (this.shown.length && this.shown[this.shown.length - 1] < this.store.base) {
        this.shown.pop();
        this.root.lastElementChild?.remove();
      }
      return;
    }
    const k = top >= 0 ? lastAtOrBefore(notes, top) : -1;
    if (top >= 0 && newest > top && k >= 0 && notes[k] === top && end - 1 - k <= SHOWN) {
      // Only newer items: prepend them.
      const frag = document.createDocumentFragment();
      const add: number[] = [];
      for (let j = end - 1; j > k; j--) {
        frag.append(this.item(notes[j]));
        add.push(notes[j]);
      }
      this.root.prepend(frag);
      this.shown = add.concat(this.shown);
    } else {
      const frag = document.createDocumentFragment();
      this.shown = [];
      for (let j = end - 1; j >= start; j--) {
        frag.append(this.item(notes[j]));
        this.shown.push(notes[j]);
      }
      this.root.replaceChildren(frag);
    }
    while (this.shown.length > SHOWN) {
      this.shown.pop();
      this.root.lastElementChild?.remove();
    }
  }
}
