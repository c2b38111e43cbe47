/**
 * What the CPU and the device can see of a mapping at the points where the DMA API defines it
 * (DESIGN.md, equivalence item 8), compared without any generated cpu_read or dma_read step:
 *
 * - CPU view, after sync_for_cpu, unmap and free_coherent: the buffer's bytes, the rest of its
 *   pages and a guard band either side (for a list, every entry's; for a coherent buffer, its
 *   pages in CPU order). A bounce copy that is missing, goes the wrong way, or is too long or too
 *   short changes exactly these bytes.
 * - Device view, after map_page, map_sg, alloc_coherent and sync_for_device: the bytes the device
 *   would read through each page of the mapping's segments, whole pages (so a bounce slot's
 *   padding counts), translated with a side-effect-free peek so that looking does not fill the
 *   IOTLB and change what comes next.
 *
 * Pages neither path has written are the same self-describing pattern on both and are skipped.
 */
import type { DmaPath } from '../../platform/dma-api.js';
import { alignUp } from '../../kernel/release.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import { reasonHex } from '../../vtd/fault.js';
import type { Divergence } from './checker.js';
import type { Mapping, PathRunner } from '../run/path-runner.js';
import type { ReachTracker } from './reach-tracker.js';
import type { Step } from '../workload/scenario.js';
import { iovaPfn } from '../../kernel/bits.js';

/** bytes compared before a buffer's first page and after its last */
export const GUARD_BYTES = 64;
/** bytes of each side shown in a report */
const SHOWN = 16;

/**
 * A CPU-side span of one path: its bytes, and what they lie around -- a buffer [phys, phys + size)
 * named `name`, or (coherent, phys < 0) page `page` of a coherent buffer -- to name a byte of it.
 */
interface Span {
  start: number;
  len: number;
  name: string;
  phys: number;
  size: number;
  page: number;
}

function pageDown(a: number): number {
  return a - (a % VTD_PAGE_SIZE);
}

/** where byte `start + i` of a span lies, in words a maintainer reads */
function where(s: Span, i: number): string {
  if (s.phys < 0) return `${s.name} +${s.page * VTD_PAGE_SIZE + i}`;
  const rel = s.start + i - s.phys;
  if (rel < 0) return `${-rel} byte(s) before ${s.name}`;
  if (rel >= s.size) return `${s.name} +${rel}, ${rel - s.size} byte(s) past its end`;
  return `${s.name} +${rel}`;
}

/** A buffer's pages widened by the guard band. */
function around(name: string, phys: number, size: number): Span {
  const start = Math.max(0, pageDown(phys) - GUARD_BYTES);
  const end = alignUp(phys + Math.max(size, 1), VTD_PAGE_SIZE) + GUARD_BYTES;
  return { start, len: end - start, name, phys, size, page: 0 };
}

/** The CPU spans of a mapping: its pages widened by the guard band, or a coherent buffer's pages. */
function cpuSpans(m: Mapping): Span[] {
  if (m.kind === 'single') return [around(m.name, m.phys, m.size)];
  if (m.kind === 'sg') return (m.entries ?? []).map((e, k) => around(`${m.name} entry ${k}`, e.phys, e.length));
  return (m.coherent?.pfns ?? []).map((pfn, k) => ({ start: pfn * VTD_PAGE_SIZE, len: VTD_PAGE_SIZE, name: m.name, phys: -1, size: 0, page: k }));
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Equal bytes (the usual case), told by one native comparison. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** The first and last differing byte of two equal-length arrays, or null. */
function diffRange(a: Uint8Array, b: Uint8Array): [number, number] | null {
  let first = -1;
  let last = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return first < 0 ? null : [first, last + 1];
}

/** Whether both paths still hold the untouched pattern over [start, start + len) of the same addresses. */
function bothPristine(l: DmaPath, g: DmaPath, start: number, len: number): boolean {
  for (let p = Math.floor(start / VTD_PAGE_SIZE); p * VTD_PAGE_SIZE < start + len; p++) {
    if (l.machine.memory.isMaterialised(p) || g.machine.memory.isMaterialised(p)) return false;
  }
  return true;
}

function viewDivergence(i: number, kind: 'cpu-view' | 'device-view', m: string, detail: string, l: string, g: string, range: string): Divergence {
  return { step: i, kind, map: m, detail, legacy: { range, bytes: l }, generic: { range, bytes: g } };
}

/** CPU view of one mapping after a sync_for_cpu, unmap or free_coherent. */
export function checkCpuView(i: number, op: string, lm: Mapping, gm: Mapping, lr: PathRunner, gr: PathRunner): Divergence[] {
  const ls = cpuSpans(lm);
  const gs = cpuSpans(gm);
  for (let k = 0; k < ls.length && k < gs.length; k++) {
    const a = ls[k]!;
    const b = gs[k]!;
    if (a.start === b.start && bothPristine(lr.model, gr.model, a.start, a.len)) continue;
    if (lr.model.machine.memory.sameBytes(a.start, gr.model.machine.memory, b.start, a.len)) continue;
    const x = lr.model.machine.memory.read(a.start, a.len);
    const y = gr.model.machine.memory.read(b.start, b.len);
    const d = diffRange(x, y);
    if (d === null) continue;
    const [from, to] = d;
    const range = `[${where(a, from)}, ${where(a, to - 1)}] (${to - from} byte(s) from phys 0x${(a.start + from).toString(16)})`;
    const shown = (v: Uint8Array): string => hexOf(v.subarray(from, Math.min(to, from + SHOWN)));
    return [
      viewDivergence(
        i,
        'cpu-view',
        lm.name,
        `after ${op} of ${lm.name} the CPU sees different bytes at ${range}: legacy ${shown(x)}, generic ${shown(y)}`,
        shown(x),
        shown(y),
        range,
      ),
    ];
  }
  return [];
}

/**
 * The device's view of a mapping: for every page its segments touch, in stream order, the
 * physical pfn a device read reaches it at, or the fault reason negated -- what hw.peek answers,
 * taken from the path's reach tracker (current after its update) where it holds it.
 */
function deviceTargets(r: PathRunner, t: ReachTracker, m: Mapping): number[] {
  const out: number[] = [];
  for (const p of r.pieces(m, 0, Math.max(m.size, 1))) {
    const first = iovaPfn(p.iova);
    const last = iovaPfn(p.iova + BigInt(p.len) - 1n);
    for (let pfn = first; pfn <= last; pfn++) out.push(t.readTarget(m.dev, pfn));
  }
  return out;
}

/** Device view of one mapping after map, alloc_coherent or sync_for_device. */
export function checkDeviceView(i: number, op: string, lm: Mapping, gm: Mapping, lr: PathRunner, gr: PathRunner, lt: ReachTracker, gt: ReachTracker): Divergence[] {
  const a = deviceTargets(lr, lt, lm);
  const b = deviceTargets(gr, gt, gm);
  const name = lm.name;
  if (a.length !== b.length) {
    return [viewDivergence(i, 'device-view', name, `after ${op} of ${name} the device's segments span ${a.length} page(s) on legacy, ${b.length} on generic`, `${a.length} pages`, `${b.length} pages`, 'whole mapping')];
  }
  const lmem = lr.model.machine.memory;
  const gmem = gr.model.machine.memory;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x < 0 || y < 0) {
      if (x < 0 && y < 0) continue;
      const say = (p: number): string => (p < 0 ? `fault ${reasonHex(-p)}` : 'readable');
      return [viewDivergence(i, 'device-view', name, `after ${op} of ${name} device page ${k} of the mapping is ${say(x)} on legacy, ${say(y)} on generic`, say(x), say(y), `device page ${k}`)];
    }
    // pages neither path wrote hold the same pattern when they are the same page
    if (x === y && !lmem.isMaterialised(x) && !gmem.isMaterialised(y)) continue;
    // in place: each memory's scratch pattern page holds until that memory is read again
    const xb = lmem.pageBytes(x);
    const yb = gmem.pageBytes(y);
    if (sameBytes(xb, yb)) continue;
    const d = diffRange(xb, yb);
    if (d === null) continue;
    const [from, to] = d;
    const range = `device page ${k}, bytes [${from}, ${to}) of the page`;
    const shown = (v: Uint8Array): string => hexOf(v.subarray(from, Math.min(to, from + SHOWN)));
    return [viewDivergence(i, 'device-view', name, `after ${op} of ${name} the device would read different bytes at ${range}: legacy ${shown(xb)}, generic ${shown(yb)}`, shown(xb), shown(yb), range)];
  }
  return [];
}

/** The view checks a step calls for, on the mapping it names. */
export function checkViews(i: number, step: Step, lr: PathRunner, gr: PathRunner, lt: ReachTracker, gt: ReachTracker): Divergence[] {
  const name = 'as' in step ? step.as : 'map' in step ? step.map : undefined;
  if (name === undefined) return [];
  const lm = lr.mappings.get(name);
  const gm = gr.mappings.get(name);
  // a mapping that failed on either side is an outcome divergence already
  if (lm === undefined || gm === undefined || !lm.ok || !gm.ok) return [];
  switch (step.op) {
    case 'sync_for_cpu':
    case 'unmap':
    case 'free_coherent':
      return checkCpuView(i, step.op, lm, gm, lr, gr);
    case 'map_page':
    case 'map_sg':
    case 'alloc_coherent':
    case 'sync_for_device':
      return lm.live && gm.live ? checkDeviceView(i, step.op, lm, gm, lr, gr, lt, gt) : [];
    default:
      return [];
  }
}
