/**
 * The equivalence checker (DESIGN.md "What is observable"): after each step, could a driver or
 * a device tell the two paths apart? Each difference becomes a divergence with a kind, the step,
 * both observations and a one-line explanation.
 */
import type { Device } from '../../kernel/device.js';
import type { DmaPath } from '../../kernel/dma-api.js';
import type { TraceEvent } from '../../kernel/trace.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import { poolKey, reachDiff, regionOf, type ReachableDiff } from './observe.js';
import type { PermListener, ReachTracker } from './reach-tracker.js';
import { PfnList } from './page-map.js';
import { TargetNames, TraceAccountant, multisetMinus, sameEntries, type StepAccount } from './trace-account.js';
import type { DeviceAccessPiece } from '../workload/consumers.js';
import type { Mapping, PathRunner, StepResult } from '../run/path-runner.js';
import type { Step } from '../workload/scenario.js';
import { iovaOffset, iovaPfn, pageAlignDown } from '../../kernel/bits.js';

export type DivergenceKind =
  | 'outcome'
  | 'device-read'
  | 'device-write'
  | 'cpu-memory'
  | 'exposure'
  | 'reachable'
  | 'sg-count'
  | 'sg-stream'
  | 'sg-limits'
  | 'consumer'
  | 'iova'
  | 'trace'
  | 'cpu-view'
  | 'device-view'
  | 'exhaustion'
  | 'leak'
  /** an imported step where the model of the traced release returned other than the kernel did (fidelity.ts) */
  | 'fidelity';

export interface Divergence {
  step: number;
  kind: DivergenceKind;
  detail: string;
  legacy: unknown;
  generic: unknown;
  allowlisted?: string;
  /** the mapping the step names (made or used), if any */
  map?: string;
  /** reachable: the device, the pages only one path reaches */
  device?: string;
  onlyLegacy?: string[];
  onlyGeneric?: string[];
  extraGenericPfns?: number[];
  /** buffer pages both paths reach, the generic one with more permission */
  widenedGenericPfns?: number[];
  /** pages (or pooled pages) the legacy path can use in a way the generic one cannot */
  narrowerGeneric?: number;
  /** exposure: the device-side pieces of the access on each path */
  probe?: { legacy: DeviceAccessPiece[]; generic: DeviceAccessPiece[] };
  /** exposure reads both sides completed: per path, page by page, where the device went */
  probePages?: { legacy: ProbePage[]; generic: ProbePage[] };
  /** sg-limits: which path broke which rule */
  path?: 'legacy-intel' | 'dma-iommu';
  rule?: 'max-seg' | 'boundary' | 'dma-mask';
  firstEntryExceeds?: boolean;
}

/** One page of a device access: access offset `at`, `n` bytes, in the IOVA page `iova`; the
 * physical pfn the device actually reached (IOTLB included) and the one the page table holds. */
export interface ProbePage {
  iova: bigint;
  at: number;
  n: number;
  reached: number;
  mapped: number;
}

function probePages(r: PathRunner, m: Mapping, pieces: readonly DeviceAccessPiece[]): ProbePage[] {
  const out: ProbePage[] = [];
  let at = 0;
  for (const p of pieces) {
    let a = p.iova;
    let left = p.len;
    while (left > 0) {
      const n = Math.min(left, 4096 - iovaOffset(a));
      const page = pageAlignDown(a);
      const reached = r.model.machine.hw.peek(m.dev.sid, iovaPfn(page), false);
      const w = r.model.iovaToPhys(m.dev, page);
      out.push({ iova: page, at, n, reached, mapped: w === 0n ? -1 : iovaPfn(w) });
      at += n;
      left -= n;
      a += BigInt(n);
    }
  }
  return out;
}

export interface CheckOptions {
  strictIova: boolean;
}

/**
 * The fault a device sees, normalised: an address beyond the width (reason 0x04) and an
 * unmapped one (0x06 read, 0x05 write) both mean nothing is there. Which one a probe past a
 * buffer hits depends on where each path placed the IOVA (near the top of the width or not),
 * and IOVA placement is not compared.
 */
function faultClass(r: StepResult): string | undefined {
  const f = r.fault;
  if (f === undefined) return undefined;
  const reason = f.reason === '0x04' ? (f.type === 'read' ? '0x06' : '0x05') : f.reason;
  return `${reason}/${f.type}`;
}

function sameFault(a: StepResult, b: StepResult): boolean {
  return faultClass(a) === faultClass(b);
}

/** device and CPU observations are equal: same bytes, or the same fault reason and type */
function sameAccess(a: StepResult, b: StepResult): boolean {
  if (a.ok !== b.ok) return false;
  if (a.ok) return a.data === b.data && a.error === b.error;
  return sameFault(a, b) && a.error === b.error;
}

function brief(r: StepResult): string {
  if (r.error !== undefined) return `error ${r.error}`;
  if (!r.ok) return r.fault !== undefined ? `fault ${r.fault.reason} (${r.fault.type})` : 'failed';
  if (r.data !== undefined) return `${r.data.length / 2} bytes`;
  if (r.count !== undefined) return `${r.count} segment(s)`;
  return r.dma !== undefined ? `ok ${r.dma}` : 'ok';
}

function firstDiff(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return Math.floor(i / 2);
}

/** Whether an access of a mapping touches bytes outside the buffer or a dead mapping. */
function isExposureProbe(m: Mapping, offset: number, len: number): boolean {
  return !m.live || offset < 0 || offset + len > m.size;
}

/** Compare the step results of one step. */
export function compareResults(i: number, step: Step, l: StepResult, g: StepResult, lr: PathRunner, gr: PathRunner, opts: CheckOptions): Divergence[] {
  const out: Divergence[] = [];
  const map = 'as' in step ? step.as : 'map' in step ? step.map : undefined;
  const add = (kind: DivergenceKind, detail: string): void => {
    out.push({ step: i, kind, detail, legacy: l, generic: g, ...(map !== undefined ? { map } : {}) });
  };
  switch (step.op) {
    case 'dma_read':
    case 'dma_write': {
      if (sameAccess(l, g)) break;
      const m = lr.mappings.get(step.map)!;
      const what = step.op === 'dma_read' ? 'device read' : 'device write';
      const where = `${step.map}[${step.offset}, +${step.len})`;
      const kind: DivergenceKind = isExposureProbe(m, step.offset, step.len) ? 'exposure' : step.op === 'dma_read' ? 'device-read' : 'device-write';
      if (l.ok && g.ok && l.data !== undefined && g.data !== undefined) {
        add(kind, `${what} of ${where} returns different bytes from byte ${firstDiff(l.data, g.data)}`);
      } else {
        add(kind, `${what} of ${where}: legacy ${brief(l)}, generic ${brief(g)}`);
      }
      const gm = gr.mappings.get(step.map)!;
      // where each path's device went, for predicates that need the addresses (a mapping that
      // failed on one side has no addresses there: that is an outcome divergence of its own)
      if (kind === 'exposure' && m.ok && gm.ok) {
        const d = out[out.length - 1]!;
        d.probe = { legacy: lr.pieces(m, step.offset, step.len), generic: gr.pieces(gm, step.offset, step.len) };
        if (step.op === 'dma_read' && l.ok && g.ok) d.probePages = { legacy: probePages(lr, m, d.probe.legacy), generic: probePages(gr, gm, d.probe.generic) };
      }
      break;
    }
    case 'cpu_read':
      if (!sameAccess(l, g)) add('cpu-memory', `CPU memory at 0x${step.phys.toString(16)} differs from byte ${firstDiff(l.data ?? '', g.data ?? '')}`);
      break;
    case 'consumer_walk':
      if (sameAccess(l, g)) break;
      if (l.ok && g.ok) add('consumer', `the ${step.consumer} consumer programming the device from ${step.map} reads different bytes from byte ${firstDiff(l.data ?? '', g.data ?? '')}`);
      else add('consumer', `the ${step.consumer} consumer programming the device from ${step.map}: legacy ${brief(l)}, generic ${brief(g)}`);
      break;
    case 'map_sg':
      if (l.ok !== g.ok) add('outcome', `dma_map_sg of ${step.sg.length} entries: legacy ${brief(l)}, generic ${brief(g)}`);
      else if (l.ok && l.count !== g.count) add('sg-count', `dma_map_sg returned ${l.count} segment(s) on legacy, ${g.count} on generic`);
      else if (l.ok && opts.strictIova && JSON.stringify(l.segments) !== JSON.stringify(g.segments)) add('iova', 'map_sg segment addresses differ');
      break;
    case 'map_page':
    case 'alloc_coherent':
      if (l.ok !== g.ok) add('outcome', `${step.op} of ${step.size} bytes: legacy ${brief(l)}, generic ${brief(g)}`);
      else if (l.ok && opts.strictIova && l.dma !== g.dma) add('iova', `${step.op} returned ${l.dma} on legacy, ${g.dma} on generic`);
      break;
    default:
      if (l.ok !== g.ok || l.error !== g.error) add('outcome', `${step.op}: legacy ${brief(l)}, generic ${brief(g)}`);
  }
  return out;
}

function sameRuns(a: ReadonlyArray<readonly [number, number]>, b: ReadonlyArray<readonly [number, number]>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]![0] !== b[i]![0] || a[i]![1] !== b[i]![1]) return false;
  return true;
}

/**
 * The stream and limits of one path's map_sg result: the first `count` segments must address
 * exactly the entries' bytes in order (bounce slots stand for their originals); a segment made
 * of several entries must respect max_seg_size and the segment boundary; every segment must lie
 * under the DMA mask.
 */
export function checkSgResult(
  path: 'legacy-intel' | 'dma-iommu',
  model: DmaPath,
  m: Mapping,
  i: number,
): Divergence[] {
  const out: Divergence[] = [];
  if (!m.ok || m.sgt === undefined || m.entries === undefined) return out;
  const segs = m.sgt.sgl.slice(0, m.count);
  // the physical runs the segments reach, with bounce slots mapped back to their originals
  const sw = model.machine.swiotlb;
  const segRuns: Array<[number, number]> = [];
  for (const s of segs) {
    let left = s.dmaLength;
    // page by page on numbers: the IOVA's page and offset (a 57-bit IOVA is not exact as one number)
    let pfn = iovaPfn(s.dmaAddress);
    let off = iovaOffset(s.dmaAddress);
    while (left > 0) {
      const n = Math.min(left, VTD_PAGE_SIZE - off);
      // iova_to_phys: 0 where nothing is mapped
      const physPfn = model.iovaPfnToPhysPfn(m.dev, pfn);
      let p = physPfn < 0 ? 0 : physPfn * VTD_PAGE_SIZE + off;
      if (sw.isSwiotlbBuffer(p)) p = sw.origOf(p);
      const last = segRuns[segRuns.length - 1];
      if (last !== undefined && last[0] + last[1] === p) last[1] += n;
      else segRuns.push([p, n]);
      left -= n;
      pfn++;
      off = 0;
    }
  }
  const entRuns: Array<[number, number]> = [];
  for (const e of m.entries) {
    const last = entRuns[entRuns.length - 1];
    if (last !== undefined && last[0] + last[1] === e.phys) last[1] += e.length;
    else entRuns.push([e.phys, e.length]);
  }
  if (!sameRuns(segRuns, entRuns)) {
    out.push({
      step: i,
      kind: 'sg-stream',
      path,
      detail: `on ${path} the ${m.count} returned segment(s) do not address the list's bytes in order`,
      legacy: path === 'legacy-intel' ? segRuns : 'as the list',
      generic: path === 'dma-iommu' ? segRuns : 'as the list',
    });
    return out;
  }
  // which entries make up each segment
  let e = 0;
  for (const s of segs) {
    const first = e;
    let sum = 0;
    while (e < m.entries.length && sum < s.dmaLength) sum += m.entries[e++]!.length;
    const merged = e - first > 1;
    const maxSeg = m.maxSegSize!;
    const mask = m.segBoundaryMask!;
    const end = s.dmaAddress + BigInt(s.dmaLength) - 1n;
    const add = (rule: 'max-seg' | 'boundary' | 'dma-mask', detail: string, firstEntryExceeds = false): void => {
      out.push({
        step: i,
        kind: 'sg-limits',
        path,
        rule,
        firstEntryExceeds,
        detail,
        legacy: path === 'legacy-intel' ? { dma: `0x${s.dmaAddress.toString(16)}`, len: s.dmaLength } : 'within limits',
        generic: path === 'dma-iommu' ? { dma: `0x${s.dmaAddress.toString(16)}`, len: s.dmaLength } : 'within limits',
      });
    };
    if (merged && s.dmaLength > maxSeg) {
      add('max-seg', `on ${path} a merged segment of ${s.dmaLength} bytes exceeds max_seg_size ${maxSeg}`, m.entries[first]!.length > maxSeg);
    }
    if (merged && mergeCrossesBoundary(s.dmaAddress, m.entries.slice(first, e), mask)) {
      add('boundary', `on ${path} merging made a segment cross the ${mask.toString(16)} segment boundary`);
    }
    if (end > m.dev.dmaMask) add('dma-mask', `on ${path} a segment ends above the DMA mask`);
  }
  return out;
}

/**
 * Whether merging put a segment boundary inside a segment: at a junction between two merged
 * entries, or inside an entry that fits in one boundary window. A boundary inside an entry longer
 * than the window is that entry's own (dma-iommu never splits an entry), not the merge's.
 */
function mergeCrossesBoundary(start: bigint, entries: ReadonlyArray<{ length: number }>, mask: bigint): boolean {
  const window = mask + 1n;
  let at = start;
  for (const [k, e] of entries.entries()) {
    const end = at + BigInt(e.length);
    if (k > 0 && at % window === 0n) return true;
    const crosses = at / window !== (end - 1n) / window;
    if (crosses && BigInt(e.length) <= window) return true;
    at = end;
  }
  return false;
}

/** One side of a ReachableWatch, told of its tracker's permission changes (a method, not a closure: see PermListener). */
class PermSide implements PermListener {
  constructor(
    private readonly watch: ReachableWatch,
    private readonly side: 0 | 1,
  ) {}

  permChanged(dev: number, phys: number, oldPerm: number, newPerm: number): void {
    this.watch.moved(dev, this.side, phys, oldPerm, newPerm);
  }
}

/** The reachable-set comparison for every device, reported when the difference changes. */
export class ReachableWatch {
  private readonly last = new Map<string, string>();
  /** per device: the buffer pages the two paths reach with different permission */
  private readonly differing: Array<Set<number>>;
  /** per device and path: pool pages reached, counted by "region:perm" */
  private readonly pooled: Array<[Map<string, number>, Map<string, number>]>;
  private readonly changed: boolean[];
  /**
   * per device: buffer pages whose permission moved on either side since the last check, compared
   * across the two once both trackers are current (a page both paths map in one step is looked at
   * once, and `differing` only changes where the paths really differ)
   */
  private readonly moves: PfnList[];

  /**
   * The running difference of two paths' reachable sets, by physical page: updated by each
   * permission change the trackers report, so a step costs what it changed.
   */
  constructor(
    private readonly a: ReachTracker,
    private readonly b: ReachTracker,
  ) {
    const n = a.model.devices.length;
    this.differing = Array.from({ length: n }, () => new Set<number>());
    this.pooled = Array.from({ length: n }, () => [new Map<string, number>(), new Map<string, number>()]);
    this.changed = new Array<boolean>(n).fill(true);
    this.moves = Array.from({ length: n }, () => new PfnList());
    for (let k = 0; k < n; k++) {
      const ra = a.reachable(k);
      const rb = b.reachable(k);
      for (const p of new Set([...ra.pages.keys(), ...rb.pages.keys()])) if (ra.pages.get(p) !== rb.pages.get(p)) this.differing[k]!.add(p);
      this.pooled[k] = [ra.pooled, rb.pooled];
    }
    a.onPermChange(new PermSide(this, 0));
    b.onPermChange(new PermSide(this, 1));
  }

  /** @internal a permission change on one side (PermSide) */
  moved(k: number, side: 0 | 1, phys: number, oldPerm: number, newPerm: number): void {
    this.changed[k] = true;
    const region = regionOf(phys);
    if (region !== null) {
      const m = this.pooled[k]![side];
      if (oldPerm !== 0) bumpKey(m, poolKey(region, oldPerm), -1);
      if (newPerm !== 0) bumpKey(m, poolKey(region, newPerm), 1);
      return;
    }
    this.moves[k]!.add(phys);
  }

  /** Fold the moves of device k into its differing pages (both trackers current). */
  private settle(k: number): void {
    const moves = this.moves[k]!;
    const n = moves.settle();
    const differing = this.differing[k]!;
    for (let x = 0; x < n; x++) {
      const phys = moves.at(x);
      if (this.a.perm(k, phys) !== this.b.perm(k, phys)) differing.add(phys);
      else differing.delete(phys);
    }
    moves.clear();
  }

  /** The difference for device k now (the shape diffReachable gives), or null. */
  private diff(k: number): ReachableDiff | null {
    const [pa, pb] = this.pooled[k]!;
    if (this.differing[k]!.size === 0 && sameCounts(pa, pb)) return null;
    const pfns = [...this.differing[k]!].sort((x, y) => x - y);
    return reachDiff(pfns, (pfn) => this.a.perm(k, pfn), (pfn) => this.b.perm(k, pfn), pa, pb);
  }


  check(i: number, legacy: DmaPath): Divergence[] {
    this.a.update();
    this.b.update();
    const out: Divergence[] = [];
    for (let k = 0; k < legacy.devices.length; k++) {
      if (!this.changed[k]) continue;
      const ld = legacy.devices[k]!;
      this.changed[k] = false;
      this.settle(k);
      const diff = this.diff(k);
      const sig = diff === null ? '' : JSON.stringify([diff.onlyA, diff.onlyB]);
      if (sig === (this.last.get(ld.name) ?? '')) continue;
      this.last.set(ld.name, sig);
      if (diff === null) continue;
      out.push({
        step: i,
        kind: 'reachable',
        device: ld.name,
        onlyLegacy: diff.onlyA,
        onlyGeneric: diff.onlyB,
        extraGenericPfns: diff.extraBPfns,
        widenedGenericPfns: diff.widerBPfns,
        narrowerGeneric: diff.narrowerB,
        detail: `device ${ld.name} can reach different physical pages: legacy only [${diff.onlyA.slice(0, 4).join(', ')}${diff.onlyA.length > 4 ? ', ...' : ''}], generic only [${diff.onlyB.slice(0, 4).join(', ')}${diff.onlyB.length > 4 ? ', ...' : ''}]`,
        legacy: diff.onlyA,
        generic: diff.onlyB,
      });
    }
    return out;
  }
}

function sameCounts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, n] of a) if (b.get(k) !== n) return false;
  return true;
}

function bumpKey(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n === 0) m.delete(k);
  else m.set(k, n);
}

/**
 * Trace accounting for both paths (trace-account.ts): each path's events against its own page
 * tables after every step, then what the two paths' events of the step mapped and unmapped.
 */
export class TraceWatch {
  private readonly l: TraceAccountant;
  private readonly g: TraceAccountant;

  constructor(
    private readonly lr: PathRunner,
    private readonly gr: PathRunner,
    private readonly lt: ReachTracker,
    private readonly gt: ReachTracker,
    /** told what each path's events of every step account for (reports align the traces by it) */
    private readonly onAccount?: (step: number, legacy: string[], generic: string[]) => void,
  ) {
    const names = new TargetNames();
    this.l = new TraceAccountant(lr, lt, names);
    this.g = new TraceAccountant(gr, gt, names);
  }

  /** The device of the DMA-API call a step makes, on one path (6.1's events belong to it). */
  private static deviceOf(r: PathRunner, step: Step): Device | undefined {
    if ('dev' in step && (step.op === 'map_page' || step.op === 'map_sg' || step.op === 'alloc_coherent')) return r.model.device(step.dev);
    if (step.op === 'unmap' || step.op === 'free_coherent') return r.mappings.get(step.map)?.dev;
    return undefined;
  }

  /** One path's events of the step applied and audited against its own page tables (problems go to out). */
  private account(out: Divergence[], i: number, step: Step, map: string | undefined, path: 'legacy-intel' | 'dma-iommu', r: PathRunner, acct: TraceAccountant, events: readonly TraceEvent[], from: number): StepAccount {
    const dev = TraceWatch.deviceOf(r, step);
    const a = acct.apply(events, from, dev);
    const audit = dev !== undefined ? acct.audit(dev) : [];
    if (a.problems.length + audit.length === 0) return a;
    const problems = [...a.problems, ...audit];
    out.push({
      step: i,
      kind: 'trace',
      path,
      detail: `on ${path} the trace events do not account for what the path mapped: ${problems.join('; ')}`,
      legacy: path === 'legacy-intel' ? problems : 'consistent',
      generic: path === 'dma-iommu' ? problems : 'consistent',
      ...(map !== undefined ? { map } : {}),
    });
    return a;
  }

  /** What an account maps and unmaps, one line a page, in the common vocabulary. */
  private accountLines(a: StepAccount): string[] {
    const say = (what: string, xs: readonly number[]): string[] => xs.map((x) => `${what} ${this.l.entryText(x)}`);
    return [...say('map', a.mapped), ...say('unmap', a.unmapped)];
  }

  /** The step's events are each path's events from lFrom and gFrom on. */
  check(i: number, step: Step, lEvents: readonly TraceEvent[], lFrom: number, gEvents: readonly TraceEvent[], gFrom: number): Divergence[] {
    const out: Divergence[] = [];
    this.lt.update();
    this.gt.update();
    const map = 'as' in step ? step.as : 'map' in step ? step.map : undefined;
    let a = this.account(out, i, step, map, 'legacy-intel', this.lr, this.l, lEvents, lFrom);
    let b = this.account(out, i, step, map, 'dma-iommu', this.gr, this.g, gEvents, gFrom);
    // a call that failed on both paths: what each mapped and unwound before failing depends on
    // where its IOVA allocations ran out (iommu_dma_map_sg_swiotlb maps entry by entry), so only
    // what it left mapped is compared
    if ('as' in step && this.lr.mappings.get(step.as)?.ok === false && this.gr.mappings.get(step.as)?.ok === false) [a, b] = [netAccount(a), netAccount(b)];
    if (this.onAccount !== undefined) this.onAccount(i, this.accountLines(a), this.accountLines(b));
    // both lists are sorted: equal lists (the usual step) need no multiset arithmetic
    if (sameEntries(a.mapped, b.mapped) && sameEntries(a.unmapped, b.unmapped)) return out;
    const say = (what: string, xs: number[]): string[] => xs.map((x) => this.l.entryText(x)).sort().map((x) => `${what} ${x}`);
    const onlyLegacy = [...say('map', multisetMinus(a.mapped, b.mapped)), ...say('unmap', multisetMinus(a.unmapped, b.unmapped))];
    const onlyGeneric = [...say('map', multisetMinus(b.mapped, a.mapped)), ...say('unmap', multisetMinus(b.unmapped, a.unmapped))];
    if (onlyLegacy.length + onlyGeneric.length > 0) {
      const show = (xs: string[]): string => `[${xs.slice(0, 4).join(', ')}${xs.length > 4 ? `, ... (${xs.length})` : ''}]`;
      out.push({
        step: i,
        kind: 'trace',
        detail: `the step's trace events account differently: only legacy ${show(onlyLegacy)}, only generic ${show(onlyGeneric)}`,
        legacy: onlyLegacy,
        generic: onlyGeneric,
        onlyLegacy,
        onlyGeneric,
        ...(map !== undefined ? { map } : {}),
      });
    }
    return out;
  }
}

/** map and unmap events of the same target within one step cancel */
function netAccount(a: StepAccount): StepAccount {
  return { ...a, mapped: multisetMinus(a.mapped, a.unmapped), unmapped: multisetMinus(a.unmapped, a.mapped) };
}
