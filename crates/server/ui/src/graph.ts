// The cluster drawn as in the Raft paper: members around a circle (SVG), the links between them,
// and each message as a shape travelling from sender to receiver (on a canvas laid over the
// SVG: hundreds of shapes move every frame, which as SVG elements would cost a layout each).

import { age, stale, s, setAttr, setText } from './dom';
import { FLIGHT_MS, MAX_FLIGHTS, type Flight, type Frame } from './frame';
import { shownRole, type MState } from './state';

const W = 460;
const H = 420;
const CX = W / 2;
const CY = H / 2 - 4;
const RING = 150;
const NODE_R = 46;

/** Message shapes (centred on 0,0), so kinds differ by more than colour. */
const SHAPES: Record<string, string> = {
  append: circle(5.5),
  heartbeat: circle(3.5),
  'append-resp': circle(3),
  'heartbeat-resp': circle(2.5),
  'pre-vote': diamond(6),
  vote: diamond(7),
  'pre-vote-resp': triangle(6),
  'vote-resp': triangle(7),
  refused: 'M-5,-5L5,5M5,-5L-5,5',
  snapshot: 'M-7,-7H7V7H-7Z',
  'timeout-now': 'M0,-8L2,-2L8,0L2,2L0,8L-2,2L-8,0L-2,-2Z',
  'read-index': 'M-4,-4H4V4H-4Z',
  'read-index-resp': 'M-3,-3H3V3H-3Z',
  'leader-durable': 'M-3,-3L3,3M3,-3L-3,3',
};

function circle(r: number): string {
  return `M${-r},0a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
}
function diamond(r: number): string {
  return `M0,${-r}L${r},0L0,${r}L${-r},0Z`;
}
function triangle(r: number): string {
  return `M0,${-r}L${r * 0.9},${r * 0.6}L${-r * 0.9},${r * 0.6}Z`;
}

/** How each kind of message is drawn (colours resolved from the CSS variables at start). */
interface Paint {
  fill?: string;
  stroke?: string;
  width?: number;
}

function paints(): Record<string, Paint> {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string) => css.getPropertyValue(name).trim() || '#888';
  const follower = v('--follower');
  const ok = v('--ok');
  const candidate = v('--candidate');
  return {
    append: { fill: follower },
    heartbeat: { stroke: follower, width: 1.5 },
    'append-resp': { fill: ok },
    'heartbeat-resp': { fill: ok },
    'pre-vote': { stroke: candidate, width: 2 },
    vote: { fill: candidate },
    'pre-vote-resp': { fill: ok, stroke: v('--bg'), width: 1.5 },
    'vote-resp': { fill: ok, stroke: v('--bg'), width: 1.5 },
    bad: { stroke: v('--bad'), width: 3 },
    snapshot: { fill: v('--t5') },
    'timeout-now': { fill: '#ffffff' },
    'read-index': { stroke: '#aab6c6', width: 1.5 },
    'read-index-resp': { stroke: '#aab6c6', width: 1.5 },
    'leader-durable': { stroke: follower, width: 1.5 },
    other: { fill: '#aab6c6' },
  };
}

function shapeOf(f: Flight): string {
  if (f.bad && (f.kind === 'vote-resp' || f.kind === 'pre-vote-resp' || f.kind === 'append-resp')) return SHAPES.refused;
  return SHAPES[f.kind] ?? circle(3);
}

interface NodeEls {
  g: SVGGElement;
  ring: SVGCircleElement;
  halo: SVGCircleElement;
  name: SVGTextElement;
  role: SVGTextElement;
  term: SVGTextElement;
  status: SVGTextElement;
  x: number;
  y: number;
}

interface LinkEls {
  a: number;
  b: number;
  line: SVGLineElement;
}

export class Graph {
  private nodes: NodeEls[] = [];
  private links: LinkEls[] = [];
  private linkLayer: SVGGElement;
  private nodeLayer: SVGGElement;
  private n = -1;
  private canvas: HTMLCanvasElement;
  private ctx: CanvasRenderingContext2D | null;
  private paths = new Map<string, Path2D>();
  private paint: Record<string, Paint> | null = null;
  private box = { x: 0, y: 0, w: W, h: H };
  private size = { w: 0, h: 0, dpr: 1 };
  private drawn = false;
  private still = matchMedia('(prefers-reduced-motion: reduce)');

  constructor(private svg: SVGSVGElement) {
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.linkLayer = s('g', { class: 'links' });
    this.nodeLayer = s('g', { class: 'nodes' });
    svg.append(this.linkLayer, this.nodeLayer);
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'flights';
    this.canvas.setAttribute('aria-hidden', 'true');
    svg.after(this.canvas);
    this.ctx = this.canvas.getContext('2d');
    new ResizeObserver(() => this.resize()).observe(svg);
  }

  private resize(): void {
    const r = this.svg.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.size = { w: r.width, h: r.height, dpr };
    const parent = (this.canvas.offsetParent ?? document.body).getBoundingClientRect();
    this.canvas.style.left = `${r.left - parent.left - (this.canvas.offsetParent?.clientLeft ?? 0)}px`;
    this.canvas.style.top = `${r.top - parent.top - (this.canvas.offsetParent?.clientTop ?? 0)}px`;
    this.canvas.style.width = `${r.width}px`;
    this.canvas.style.height = `${r.height}px`;
    this.canvas.width = Math.round(r.width * dpr);
    this.canvas.height = Math.round(r.height * dpr);
    this.drawn = true;
  }

  private layout(f: Frame): void {
    const n = f.members.list.length;
    this.n = n;
    this.linkLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
    this.nodes = [];
    this.links = [];
    for (let i = 0; i < n; i++) {
      const a = -Math.PI / 2 + (i * 2 * Math.PI) / n;
      const x = n === 1 ? CX : CX + RING * Math.cos(a);
      const y = n === 1 ? CY : CY + RING * Math.sin(a);
      const below = y > CY + 1 || n === 1;
      const g = s('g', { class: 'node', transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
      const halo = s('circle', { class: 'halo', r: NODE_R + 7 });
      const ring = s('circle', { class: 'ring', r: NODE_R });
      const name = s('text', { class: 'n-name', y: -13 });
      const role = s('text', { class: 'n-role', y: 5 });
      const term = s('text', { class: 'n-term', y: 22 });
      const status = s('text', { class: 'n-status', y: below ? NODE_R + 22 : -NODE_R - 14 });
      setText(name, f.members.list[i].name);
      g.append(halo, ring, name, role, term, status);
      this.nodeLayer.append(g);
      this.nodes.push({ g, ring, halo, name, role, term, status, x, y });
    }
    // Fit the view to the drawing (nodes, halos and the status lines above or below them).
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const nd of this.nodes) {
      const below = nd.y > CY + 1 || n === 1;
      x0 = Math.min(x0, nd.x - 64);
      x1 = Math.max(x1, nd.x + 64);
      y0 = Math.min(y0, nd.y - NODE_R - 9 - (below ? 0 : 24));
      y1 = Math.max(y1, nd.y + NODE_R + 9 + (below ? 20 : 0));
    }
    if (n) {
      this.box = { x: Math.round(x0 - 4), y: Math.round(y0 - 4), w: Math.round(x1 - x0 + 8), h: Math.round(y1 - y0 + 8) };
      this.svg.setAttribute('viewBox', `${this.box.x} ${this.box.y} ${this.box.w} ${this.box.h}`);
    }
    for (let a = 0; a < n; a++) {
      for (let b = a + 1; b < n; b++) {
        const [x1, y1, x2, y2] = this.ends(a, b, 0);
        const line = s('line', { class: 'link', x1, y1, x2, y2 });
        this.linkLayer.append(line);
        this.links.push({ a, b, line });
      }
    }
  }

  /** The ends of the segment from a to b between the node circles, shifted sideways by `off`. */
  private ends(a: number, b: number, off: number): [number, number, number, number] {
    const A = this.nodes[a];
    const B = this.nodes[b];
    const dx = B.x - A.x;
    const dy = B.y - A.y;
    const len = Math.hypot(dx, dy) || 1;
    const ux = dx / len;
    const uy = dy / len;
    const r = NODE_R + 4;
    const px = -uy * off;
    const py = ux * off;
    return [A.x + ux * r + px, A.y + uy * r + py, B.x - ux * r + px, B.y - uy * r + py];
  }

  render(f: Frame): void {
    if (f.members.list.length !== this.n) this.layout(f);
    const { states } = f;
    for (let i = 0; i < this.nodes.length; i++) this.renderNode(f, i, states[i]);
    for (const l of this.links) {
      const A = states[l.a];
      const B = states[l.b];
      const idA = f.members.list[l.a].id;
      const idB = f.members.list[l.b].id;
      let cls = 'link';
      if (A.cut || B.cut) cls += ' cut';
      else if (shownRole(A) === 'down' || shownRole(B) === 'down') cls += ' down';
      else if ((A.leader === idB && idB) || (B.leader === idA && idA)) cls += ' follow';
      setAttr(l.line, 'class', cls);
    }
    this.renderFlights(f);
  }

  private renderNode(f: Frame, i: number, st: MState): void {
    const el = this.nodes[i];
    const role = shownRole(st);
    setAttr(el.g, 'class', `node r-${role}${f.leader === i ? ' current' : ''}${st.cut ? ' is-cut' : ''}`);
    setText(el.role, role === 'pre-candidate' ? 'pre-cand.' : role);
    setText(el.term, st.known ? `term ${st.term}` : '');
    let status = '';
    if (st.process === 'killed') status = 'killed';
    else if (st.process === 'paused') status = 'paused';
    else if (!st.up) status = 'unreachable';
    if (st.cut) status = status ? `${status} · cut off` : '✂ cut off';
    if (!status && st.role === 'follower' && st.leader) {
      const heard = st.heard.find((h) => h.id === st.leader);
      if (heard) status = `♥ ${age(heard.ms + stale(f.t - st.heardAt))}`;
    }
    setText(el.status, status);
    setAttr(el.status, 'class', `n-status${st.cut || !st.up || st.process !== 'running' && st.process !== 'unknown' ? ' bad' : ''}`);
  }

  private renderFlights(f: Frame): void {
    const ctx = this.ctx;
    if (!ctx || !this.size.w) return;
    const { w, h, dpr } = this.size;
    const list = f.flights;
    if (!list.length && !this.drawn) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
    if (this.still.matches) return;
    // The SVG's viewBox, fitted as preserveAspectRatio="xMidYMid meet" does.
    const b = this.box;
    const k = Math.min(w / b.w, h / b.h);
    const ox = (w - b.w * k) / 2 - b.x * k;
    const oy = (h - b.h * k) / 2 - b.y * k;
    ctx.setTransform(dpr * k, 0, 0, dpr * k, dpr * ox, dpr * oy);
    this.paint ??= paints();
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    ctx.font = '600 11px system-ui, sans-serif';
    ctx.textAlign = 'center';
    let labels = 0;
    for (let i = Math.max(0, list.length - MAX_FLIGHTS); i < list.length; i++) {
      const fl = list[i];
      const p = (f.t - fl.at) / FLIGHT_MS;
      if (p < 0 || p > 1 || fl.to < 0 || fl.to >= this.nodes.length || fl.from >= this.nodes.length) continue;
      const [x1, y1, x2, y2] = this.ends(fl.from, fl.to, 8);
      const e = p < 0.5 ? 2 * p * p : 1 - 2 * (1 - p) * (1 - p);
      const x = x1 + (x2 - x1) * e;
      const y = y1 + (y2 - y1) * e;
      const d = shapeOf(fl);
      let path = this.paths.get(d);
      if (!path) this.paths.set(d, (path = new Path2D(d)));
      const pt = this.paint[fl.bad ? 'bad' : fl.kind] ?? this.paint.other;
      ctx.translate(x, y);
      if (pt.fill) {
        ctx.fillStyle = pt.fill;
        ctx.fill(path);
      }
      if (pt.stroke) {
        ctx.strokeStyle = pt.stroke;
        ctx.lineWidth = pt.width ?? 1.5;
        ctx.stroke(path);
      }
      ctx.translate(-x, -y);
      if (fl.label && labels++ < 12) {
        ctx.lineWidth = 3;
        ctx.strokeStyle = getBg(this.paint);
        ctx.strokeText(fl.label, x, y - 11);
        ctx.fillStyle = this.paint.bad.stroke ?? '#f66';
        ctx.fillText(fl.label, x, y - 11);
      }
      this.drawn = true;
    }
  }
}

function getBg(p: Record<string, Paint>): string {
  return p['vote-resp'].stroke ?? '#000';
}
