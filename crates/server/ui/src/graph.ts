// The cluster drawn as in the Raft paper: members around a circle, the links between them, and
// each message as a shape travelling from sender to receiver.

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

/** The CSS class of a flight (its colour and fill). */
function flightClass(f: Flight): string {
  if (f.bad) return 'dot k-bad';
  return `dot k-${f.kind}`;
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
  private dots: SVGPathElement[] = [];
  private dotState: string[] = [];
  private labels: SVGTextElement[] = [];
  private linkLayer: SVGGElement;
  private nodeLayer: SVGGElement;
  private dotLayer: SVGGElement;
  private n = -1;

  constructor(private svg: SVGSVGElement) {
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.linkLayer = s('g', { class: 'links' });
    this.dotLayer = s('g', { class: 'dots', 'aria-hidden': 'true' });
    this.nodeLayer = s('g', { class: 'nodes' });
    svg.append(this.linkLayer, this.nodeLayer, this.dotLayer);
    for (let i = 0; i < MAX_FLIGHTS; i++) {
      const d = s('path', { class: 'dot', visibility: 'hidden' });
      this.dots.push(d);
      this.dotState.push('');
      this.dotLayer.append(d);
    }
    for (let i = 0; i < 12; i++) {
      const t = s('text', { class: 'dot-label', visibility: 'hidden' });
      this.labels.push(t);
      this.dotLayer.append(t);
    }
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
    if (n) this.svg.setAttribute('viewBox', `${(x0 - 4).toFixed(0)} ${(y0 - 4).toFixed(0)} ${(x1 - x0 + 8).toFixed(0)} ${(y1 - y0 + 8).toFixed(0)}`);
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
    let d = 0;
    let l = 0;
    const list = f.flights;
    for (let k = Math.max(0, list.length - MAX_FLIGHTS); k < list.length; k++) {
      const fl = list[k];
      const p = (f.t - fl.at) / FLIGHT_MS;
      if (p < 0 || p > 1 || fl.to < 0 || fl.to >= this.nodes.length || fl.from >= this.nodes.length) continue;
      const [x1, y1, x2, y2] = this.ends(fl.from, fl.to, 5);
      const e = p < 0.5 ? 2 * p * p : 1 - 2 * (1 - p) * (1 - p);
      const x = x1 + (x2 - x1) * e;
      const y = y1 + (y2 - y1) * e;
      const dot = this.dots[d];
      const key = `${flightClass(fl)}|${fl.kind}`;
      if (this.dotState[d] !== key) {
        this.dotState[d] = key;
        dot.setAttribute('class', flightClass(fl));
        dot.setAttribute('d', shapeOf(fl));
      }
      dot.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
      dot.setAttribute('visibility', 'visible');
      d++;
      if (fl.label && l < this.labels.length) {
        const t = this.labels[l++];
        setText(t, fl.label);
        t.setAttribute('x', (x + 9).toFixed(1));
        t.setAttribute('y', (y - 8).toFixed(1));
        t.setAttribute('visibility', 'visible');
      }
      if (d >= this.dots.length) break;
    }
    for (let k = d; k < this.dots.length; k++) {
      if (this.dotState[k] === 'hidden') continue;
      this.dotState[k] = 'hidden';
      this.dots[k].setAttribute('visibility', 'hidden');
    }
    for (let k = l; k < this.labels.length; k++) this.labels[k].setAttribute('visibility', 'hidden');
  }
}
