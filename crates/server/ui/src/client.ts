// `tally dev`'s client panel: write one key, or keep writing at a rate.

import { put, setLoad } from './api';
import { $, setText } from './dom';
import type { LoadState } from './types';

export class ClientPanel {
  private result = $('put-result');
  private loadError = $('load-error');
  private written = $('load-written');
  private loadState = $('load-state');
  private rate = $('load-rate') as HTMLInputElement;
  private start = $('load-start') as HTMLButtonElement;
  private stop = $('load-stop') as HTMLButtonElement;
  private running = false;

  constructor(private onAction: (text: string) => void) {
    const form = $('put-form') as HTMLFormElement;
    const key = $('put-key') as HTMLInputElement;
    const value = $('put-value') as HTMLInputElement;
    const submit = $('put-submit') as HTMLButtonElement;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!key.value) {
        this.say(this.result, 'A key is needed.', true);
        key.focus();
        return;
      }
      submit.disabled = true;
      this.say(this.result, 'Writing…', false);
      try {
        const r = await put(key.value, value.value);
        this.say(this.result, `Written ${key.value} at revision ${r.revision}.`, false);
      } catch (err) {
        this.say(this.result, `Write failed: ${(err as Error).message}`, true);
      } finally {
        submit.disabled = false;
      }
    });
    ($('load-form') as HTMLFormElement).addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.setRate(Number(this.rate.value));
    });
    this.stop.addEventListener('click', () => void this.setRate(0));
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
      this.onAction(rate > 0 ? `you started a load of ${Math.round(rate)} writes/s` : 'you stopped the load');
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
