/**
 * Trace accounting's first half (trace-account.ts has the whole story): each step's map and
 * unmap trace events of one path applied to a shadow of each device's IOVA pages, and what the
 * step's events mapped and unmapped, as account entries (trace-targets.ts).
 *
 * 5.10's bounce_map_single names the caller's buffer, 6.1's iommu:map the swiotlb slot: both
 * become "b:" targets. 5.10 names the device on every event; 6.1's iommu events name none, so they
 * belong to the device of the DMA-API call that emitted them.
 */
import type { Device } from '../../kernel/device.js';
import { alignedNrpages } from '../../intel-common/intel-pgtable.js';
import { iovaOffset, iovaPfn, pageAligned } from '../../kernel/bits.js';
import type { TraceEvent, TraceObserver } from '../../kernel/trace.js';
import { SWIOTLB_REGION, inRegion } from '../../vtd/regions.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import type { PathRunner } from '../run/path-runner.js';
import { PageMap, PfnList } from './page-map.js';
import { hex } from '../workload/scenario.js';
import { DEVICE_UNIT, MAX_DEVICES, PathTargets, bounceTarget, type TargetNames } from './trace-targets.js';

/** An event's numbers, as its emitter carried them beside the text (never parsed back from it). */
function fields(e: TraceEvent): Record<string, bigint> {
  if (e.fields === undefined) throw new Error(`trace event ${e.system}:${e.event} carries no fields to account for`);
  return e.fields.num;
}

/** The events trace accounting reads; the rest (qi_submit above all) map nothing. */
const ACCOUNTED = new Set(['map_single', 'map_sg', 'bounce_map_single', 'unmap_single', 'unmap_sg', 'bounce_unmap_single', 'bounce_map_sg', 'map', 'unmap']);

/** (qi_submit, the most frequent event, told apart without a hash) */
function isAccounted(e: TraceEvent): boolean {
  return e.event !== 'qi_submit' && ACCOUNTED.has(e.event);
}

/** aligned_nrpages of an event's fields; an event of size 0 touches nothing */
function nrPages(addr: bigint, size: bigint): number {
  return size <= 0n ? 0 : alignedNrpages(iovaOffset(addr), Number(size));
}

/** What one step's events of one path account for. */
export interface StepAccount {
  /** account entries (device index * DEVICE_UNIT + target), ascending */
  readonly mapped: readonly number[];
  readonly unmapped: readonly number[];
  /** events that name pages the shadow cannot take (unmapping what is not mapped, mapping twice) */
  readonly problems: readonly string[];
}

/** the account of a step without map or unmap events (most steps) */
const NOTHING: StepAccount = Object.freeze({ mapped: Object.freeze([]), unmapped: Object.freeze([]), problems: Object.freeze([]) });

/** One path's event shadow; TraceAccountant (trace-account.ts) audits it against the PTEs. */
export class TraceShadow implements TraceObserver {
  /** per device index: IOVA pfn -> target */
  protected readonly shadow: PageMap[];
  protected readonly byName = new Map<string, number>();
  protected readonly devices: readonly Device[];
  /** what the path's physical pages stand for */
  readonly targets: PathTargets;

  /**
   * The original address each swiotlb page of an iommu:map event stood for when it was emitted:
   * a slot can be released again within the same call (an sg list unwinding). Kept until the
   * step's events are applied.
   */
  private readonly slotOrig = new Map<TraceEvent, Map<number, number>>();

  /** per device index: IOVA pfns the events touched since its last audit */
  protected readonly touched: PfnList[];

  /** the account apply() is building (one step's) */
  private acc: { mapped: number[]; unmapped: number[]; problems: string[] } = { mapped: [], unmapped: [], problems: [] };

  constructor(
    protected readonly runner: PathRunner,
    readonly names: TargetNames,
  ) {
    this.devices = runner.model.devices;
    if (this.devices.length > MAX_DEVICES) throw new Error(`trace accounting keeps at most ${MAX_DEVICES} devices`);
    this.devices.forEach((d, k) => this.byName.set(d.name, k));
    this.shadow = this.devices.map(() => new PageMap());
    this.touched = this.devices.map(() => new PfnList());
    this.targets = new PathTargets(runner, names);
    runner.model.machine.trace.observer = this;
  }

  /** TraceObserver: an iommu:map of swiotlb pages records what each slot page stands for now. */
  traceEmitted(e: TraceEvent): void {
    if (e.event !== 'map') return;
    const f = fields(e);
    const first = iovaPfn(f['paddr']!);
    const n = iovaPfn(f['size']!);
    if (!inRegion(SWIOTLB_REGION, first * VTD_PAGE_SIZE)) return;
    const sw = this.runner.model.machine.swiotlb;
    const orig = new Map<number, number>();
    for (let i = 0; i < n; i++) orig.set(first + i, sw.origOf((first + i) * VTD_PAGE_SIZE));
    this.slotOrig.set(e, orig);
  }

  /** One IOVA page mapped to a target, in the step's account and the device's shadow. */
  private mapPage(dev: number, iovaPfn: number, t: number): void {
    const s = this.shadow[dev]!;
    if (s.get(iovaPfn) !== undefined) this.acc.problems.push(`a map event for IOVA page ${hex(iovaPfn * VTD_PAGE_SIZE)} of ${this.devices[dev]!.name}, which is already mapped`);
    s.set(iovaPfn, t);
    this.touched[dev]!.add(iovaPfn);
    this.acc.mapped.push(dev * DEVICE_UNIT + t);
  }

  /** `n` pages from physical page `p` (each page's target as the path maps it) mapped from `iovaPfn`. */
  private mapPhys(dev: number, iovaPfn: number, n: number, p: number, slotOrig?: Map<number, number>): void {
    const targets = this.targets;
    for (let i = 0; i < n; i++) this.mapPage(dev, iovaPfn + i, targets.physTarget(p + i, slotOrig));
  }

  private unmapPages(dev: number, iovaPfn: number, n: number): void {
    const s = this.shadow[dev]!;
    const t0 = this.touched[dev]!;
    let missing = 0;
    for (let i = 0; i < n; i++) {
      const t = s.get(iovaPfn + i);
      if (t === undefined) {
        missing++;
        continue;
      }
      s.delete(iovaPfn + i);
      t0.add(iovaPfn + i);
      this.acc.unmapped.push(dev * DEVICE_UNIT + t);
    }
    if (missing > 0) this.acc.problems.push(`an unmap event for ${missing} IOVA page(s) from ${hex(iovaPfn * VTD_PAGE_SIZE)} of ${this.devices[dev]!.name} that are not mapped`);
  }

  /** The device index a 5.10 event names. */
  private dev5(e: TraceEvent): number {
    const k = e.fields?.dev === undefined ? undefined : this.byName.get(e.fields.dev);
    if (k === undefined) throw new Error(`trace event ${e.system}:${e.event} names no device of the scenario`);
    return k;
  }

  /**
   * Apply the events [from, events.length) of a step. `stepDevice` is the device of the DMA-API
   * call the step made (6.1's events belong to it).
   */
  apply(events: readonly TraceEvent[], from: number, stepDevice: Device | undefined): StepAccount {
    let accounted = false;
    for (let k = from; k < events.length && !accounted; k++) accounted = isAccounted(events[k]!);
    if (!accounted) return NOTHING;
    const acc = { mapped: [] as number[], unmapped: [] as number[], problems: [] as string[] };
    this.acc = acc;
    const stepDev = stepDevice === undefined ? -1 : this.byName.get(stepDevice.name)!;
    for (let k = from; k < events.length; k++) {
      const e = events[k]!;
      if (!isAccounted(e)) continue;
      const f = fields(e);
      switch (e.event) {
        // ---- 5.10 intel_iommu:* (kernel-semantics 2.11, 10.11)
        case 'map_single':
          // dev_addr and phys_addr keep the offset; size counts whole pages from their page
          this.mapPhys(this.dev5(e), iovaPfn(f['dev_addr']!), iovaPfn(f['size']!), iovaPfn(f['phys_addr']!));
          break;
        case 'map_sg':
          this.mapPhys(this.dev5(e), iovaPfn(f['dev_addr']!), nrPages(f['dev_addr']!, f['size']!), iovaPfn(f['phys_addr']!));
          break;
        case 'bounce_map_single': {
          // the caller's buffer; bounced (to a slot holding it from offset 0) unless page-aligned
          const phys = f['phys_addr']!;
          const size = f['size']!;
          const dev = this.dev5(e);
          const first = iovaPfn(f['dev_addr']!);
          const n = nrPages(0n, size);
          if (pageAligned(phys | size)) this.mapPhys(dev, first, n, iovaPfn(phys));
          else for (let i = 0; i < n; i++) this.mapPage(dev, first + i, bounceTarget(Number(phys) + i * VTD_PAGE_SIZE));
          break;
        }
        case 'unmap_single':
          this.unmapPages(this.dev5(e), iovaPfn(f['dev_addr']!), nrPages(f['dev_addr']!, f['size']!));
          break;
        case 'unmap_sg':
        case 'bounce_unmap_single':
        case 'bounce_map_sg':
          // repeat what the unmap_single or bounce_map_single before them said
          break;
        // ---- 6.1 iommu:map / iommu:unmap (kernel-semantics 9.6)
        case 'map':
          if (stepDev < 0) acc.problems.push('a map event outside any DMA-API call');
          else this.mapPhys(stepDev, iovaPfn(f['iova']!), iovaPfn(f['size']!), iovaPfn(f['paddr']!), this.slotOrig.get(e));
          break;
        case 'unmap':
          if (stepDev < 0) acc.problems.push('an unmap event outside any DMA-API call');
          else this.unmapPages(stepDev, iovaPfn(f['iova']!), iovaPfn(f['unmapped_size']!));
          break;
        default:
          // qi_submit and the rest map nothing
          break;
      }
    }
    if (this.slotOrig.size > 0) this.slotOrig.clear();
    sortAscending(acc.mapped);
    sortAscending(acc.unmapped);
    return acc;
  }
}

export function ascending(a: number, b: number): number {
  return a - b;
}

/** Sort in place, unless already ascending (a mapping's pages usually are: no comparator calls). */
function sortAscending(xs: number[]): void {
  for (let i = 1; i < xs.length; i++) {
    if (xs[i - 1]! > xs[i]!) {
      xs.sort(ascending);
      return;
    }
  }
}
