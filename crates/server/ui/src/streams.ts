// One EventSource per member (`<client_url>/ui/events`), reconnecting while the member is down.
// A stream that errors, or goes silent (views come every 200 ms; a paused process sends none),
// makes the member unreachable until its next event.

import type { Ev } from './types';

/** No event for this long: the member is unreachable. */
const SILENT_MS = 1000;
/** Silent for this long: reconnect (the member may have come back on a new connection). */
const RECONNECT_SILENT_MS = 4000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 1000;

export interface StreamSink {
  event(e: Ev): void;
  /** The stream went up (an event came) or down (error, silence). */
  status(up: boolean, why: 'hello' | 'event' | 'error' | 'silent'): void;
}

export class Stream {
  private es: EventSource | null = null;
  private up = false;
  private lastEvent = 0;
  private retry = RETRY_MIN_MS;
  private timer = 0;
  private closed = false;

  constructor(
    readonly url: string,
    private sink: StreamSink,
  ) {
    this.open();
  }

  private open(): void {
    if (this.closed) return;
    this.lastEvent = performance.now();
    const es = new EventSource(this.url);
    this.es = es;
    es.onmessage = (m: MessageEvent<string>) => {
      this.lastEvent = performance.now();
      this.retry = RETRY_MIN_MS;
      let e: Ev;
      try {
        e = JSON.parse(m.data) as Ev;
      } catch {
        return;
      }
      if (!e || typeof e.type !== 'string') return;
      if (typeof e.t !== 'number') e.t = Date.now();
      if (!this.up) {
        this.up = true;
        this.sink.status(true, e.type === 'hello' ? 'hello' : 'event');
      }
      this.sink.event(e);
    };
    es.onerror = () => {
      this.setDown('error');
      // The browser retries by itself unless the stream is closed for good (an HTTP error);
      // either way a fresh EventSource after a short backoff comes back soonest.
      es.close();
      if (this.es === es) this.es = null;
      this.schedule();
    };
  }

  private setDown(why: 'error' | 'silent'): void {
    if (this.up) {
      this.up = false;
      this.sink.status(false, why);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.open(), this.retry);
    this.retry = Math.min(RETRY_MAX_MS, this.retry * 2);
  }

  /** Called about every 250 ms: notices silence. */
  check(): void {
    if (this.closed || !this.es) return;
    const quiet = performance.now() - this.lastEvent;
    if (quiet > SILENT_MS) this.setDown('silent');
    if (quiet > RECONNECT_SILENT_MS) {
      this.es.close();
      this.es = null;
      this.retry = RETRY_MIN_MS;
      this.schedule();
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.es?.close();
    this.es = null;
  }
}
