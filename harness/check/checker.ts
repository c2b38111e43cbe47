/**
 * The equivalence checker (DESIGN.md "What is observable"): after each step, could a driver or
 * a device tell the two paths apart? Each difference becomes a divergence with a kind, the step,
 * both observations and a one-line explanation.
 */
import type { Device } from '../../kernel/device.js';
import type { DmaPath } from '../../platform/dma-api.js';
import type { TraceEvent } from '../../kernel/trace.js';
import { poolKey, reachDiff, regionOf, type ReachableDiff } from './observe.js';
import type { ReachTracker } from './reach-tracker.js';
import type { PermListener } from './reach-probes.js';
import { PfnList } from './page-map.js';
import { TraceAccountant, multisetMinus, sameEntries } from './trace-account.js';
import { TargetNames } from './trace-targets.js';
import { type StepAccount } from './trace-events.js';
import type { DeviceAccessPiece } from '../workload/consumers.js';
import type { PathRunner, StepResult } from '../run/path-runner.js';
import { compareOp } from '../workload/ops/registry.js';
import type { Step } from '../workload/scenario.js';

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

export interface CheckOptions {
  strictIova: boolean;
}

/** Compare the step results of one step (its op's compare: workload/ops/). */
export function compareResults(i: number, step: Step, l: StepResult, g: StepResult, lr: PathRunner, gr: PathRunner, opts: CheckOptions): Divergence[] {
  const out: Divergence[] = [];
  compareOp(step.op, out, i, step, l, g, lr, gr, opts);
  return out;
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
