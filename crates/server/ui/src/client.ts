// `tally dev`'s client panel: write one key, or keep writing at a rate.

import { put, setLoad } from './api';
import { $, h, setText } from './dom';
import type { LoadState } from './types';

/** Puts listed in `put-result` at most (pending ones are never dropped). */
const PUT_LINES = 4;

interface PutLine {
  el: HTMLElement;
  done: boolean;
}

export class ClientPanel {
  private result = $('put-result');
  private through = $('put-member') as HTMLSelectElement;
  /** The puts listed, newest first: each says waiting…, its revision, or its error. */
  private lines: PutLine[] = [];
  private loadError = $('load-error');
  private written = $('load-written');
  private loadState = $('load-state');
  private rate = $('load-rate') as HTMLInputElement;
  private start = $('load-start') as HTMLButtonElement;
  private stop = $('load-stop') as HTMLButtonElement;
  private running = false;

  /** `onAction(text, member)`: a sentence for the event list ('' member: the page's own). */
  constructor(private onAction: (text: string, member: string) => void) {
    const form = $('put-form') as HTMLFormElement;
    const key = $('put-key') as HTMLInputElement;
    const value = $('put-value') as HTMLInputElement;
    // Puts run side by side: one through a cut-off member may wait for seconds, and the form
    // stays usable meanwhile (each put has its own line in put-result).
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!key.value) {
        this.line('', '', 'A key is needed.', 'error');
        key.focus();
        return;
      }
      void this.put(key.value, value.value, this.through.value);
    });
    ($('load-form') as HTMLFormElement).addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.setRate(Number(this.rate.value));
    });
    this.stop.addEventListener('click', () => void this.setRate(0));
  }

  /** The members a put can go through (keeps the choice made). */
  setMembers(names: string[]): void {
    const have = Array.from(this.through.options, (o) => o.value).slice(1);
    if (have.join('\n') === names.join('\n')) return;
    const chosen = this.through.value;
    this.through.replaceChildren(h('option', { value: '' }, 'any member'), ...names.map((n) => h('option', { value: n }, n)));
    this.through.value = names.includes(chosen) ? chosen : '';
  }

  private async put(key: string, value: string, member: string): Promise<void> {
    const via = member ? ` through ${member}` : '';
    const line = this.line(key, member, `Writing ${key}${via}: waiting…`, 'waiting');
    if (member) this.onAction(`you asked ${member} alone to write ${key}`, member);
    const t0 = performance.now();
    try {
      const r = await put(key, value, member);
      this.settle(line, `Written ${key}${via} at revision ${r.revision}.`, 'ok');
    } catch (err) {
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      const msg = (err as Error).message;
      this.settle(line, `Write of ${key}${via} failed after ${secs} s: ${msg}`, 'error');
      if (member) this.onAction(`your write of ${key} through ${member} failed: ${msg}`, member);
    }
  }

  /** Adds a line on top of put-result, dropping the oldest finished ones beyond PUT_LINES. */
  private line(key: string, member: string, text: string, state: 'waiting' | 'ok' | 'error'): PutLine {
    const el = h('span', { class: `put-line put-${state}`, 'data-key': key, 'data-member': member, 'data-state': state }, text);
    const line: PutLine = { el, done: state !== 'waiting' };
    this.lines.unshift(line);
    this.result.prepend(el);
    for (let i = this.lines.length - 1; i >= 0 && this.lines.length > PUT_LINES; i--) {
      if (!this.lines[i].done) continue;
      this.lines[i].el.remove();
      this.lines.splice(i, 1);
    }
    return line;
  }

  private settle(line: PutLine, text: string, state: 'ok' | 'error'): void {
    line.done = true;
    line.el.textContent = text;
    line.el.className = `put-line put-${state}`;
    line.el.setAttribute('data-state', state);
  }

  private say(el: HTMLElement, text: string, error: boolean): void {
    setText(el, text);
    el.classList.toggle('bad', error);
  }

  private async setRate(rate: number): Promise<void> {
    if (!Number.isFinite(rate) || rate < 0) {
      this.say(this.loadError, 'The rate is a number of writes a second (0 stops).', true);
      return;
    }
    this.say(this.loadError, '', false);
    try {
      const s = await setLoad(Math.round(rate));
      this.show(s);
      this.onAction(rate > 0 ? `you started a load of ${Math.round(rate)} writes/s` : 'you stopped the load', '');
    } catch (err) {
      this.say(this.loadError, `Load failed: ${(err as Error).message}`, true);
    }
  }

  show(s: LoadState | undefined): void {
    if (!s) return;
    this.running = s.running;
    setText(this.written, s.written.toLocaleString('en'));
    setText(this.loadState, s.running ? `running at ${s.rate.toLocaleString('en')} writes/s` : 'stopped');
    if (this.stop.disabled === this.running) this.stop.disabled = !this.running;
    setText(this.start, this.running ? 'Set rate' : 'Start');
  }
}
