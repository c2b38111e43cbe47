/**
 * Trace accounting (DESIGN.md, equivalence item 7): what each path's map/unmap trace events say
 * it mapped and unmapped, in terms both releases' vocabularies can be translated to, checked two
 * ways after every step:
 *
 * - against the path itself: a shadow of each device's IOVA pages built from the events alone
 *   must equal the present PTEs of that device's domain. A mapping or unmapping without its event,
 *   or an event for a range the path did not map, shows here, on the path that did it.
 * - against the other path: the targets a step's events mapped and unmapped, per device, must be
 *   the same multiset on both (IOVAs differ legitimately and are not compared).
 *
 * A target is what an IOVA page leads to: a buffer page ("p:0x..."), a bounce slot page named by
 * the original byte address it stands for ("b:0x..."), or page k of a coherent buffer ("c:NAME:k").
 * 5.10's bounce_map_single names the caller's buffer, 6.1's iommu:map the swiotlb slot: both
 * become "b:" targets. 5.10 names the device on every event; 6.1's iommu events name none, so they
 * belong to the device of the DMA-API call that emitted them.
 */
import type { Device } from '../kernel/device.js';
import { alignedNrpages } from '../kernel/intel-pgtable.js';
import type { TraceEvent } from '../kernel/trace.js';
import { COHERENT_REGION, SWIOTLB_REGION, inRegion } from '../vtd/regions.js';
import { VTD_PAGE_SIZE } from '../vtd/regs.js';
import type { PathRunner } from './path-runner.js';
import type { ReachTracker } from './reach-tracker.js';

/** An event's numbers, as its emitter carried them beside the text (never parsed back from it). */
function fields(e: TraceEvent): Record<string, bigint> {
  if (e.fields === undefined) throw new Error(`trace event ${e.system}:${e.event} carries no fields to account for`);
  return e.fields.num;
}

/** The events trace accounting reads; the rest (qi_submit above all) map nothing. */
const ACCOUNTED = new Set(['map_single', 'map_sg', 'bounce_map_single', 'unmap_single', 'unmap_sg', 'bounce_unmap_single', 'bounce_map_sg', 'map', 'unmap']);

const hex = (n: number): string => `0x${n.toString(16)}`;

/** aligned_nrpages of an event's fields; an event of size 0 touches nothing */
function nrPages(addr: bigint, size: bigint): number {
  return size <= 0n ? 0 : alignedNrpages(addr, Number(size));
}

/** What one step's events of one path account for. */
export interface StepAccount {
  /** "device target" strings, sorted */
  mapped: string[];
  unmapped: string[];
  /** events that name pages the shadow cannot take (unmapping what is not mapped, mapping twice) */
  problems: string[];
}

export class TraceAccountant {
  /** per device name: IOVA pfn -> target */
  private readonly shadow = new Map<string, Map<number, string>>();
  private readonly byName = new Map<string, Device>();

  /**
   * The original address each swiotlb page of an iommu:map event stood for when it was emitted:
   * a slot can be released again within the same call (an sg list unwinding).
   */
  private readonly slotOrig = new WeakMap<TraceEvent, Map<number, number>>();

  /** per device name: IOVA pfns the events touched since its last audit */
  private readonly touched = new Map<string, Set<number>>();

  constructor(
    private readonly runner: PathRunner,
    private readonly tracker: ReachTracker,
  ) {
    for (const d of runner.model.devices) this.byName.set(d.name, d);
    const sw = runner.model.machine.swiotlb;
    runner.model.machine.trace.onEmit = (e) => {
      if (e.event !== 'map') return;
      const f = fields(e);
      const first = Number(f['paddr']! >> 12n);
      const n = Number(f['size']! >> 12n);
      if (!inRegion(SWIOTLB_REGION, first * VTD_PAGE_SIZE)) return;
      const orig = new Map<number, number>();
      for (let i = 0; i < n; i++) orig.set(first + i, sw.origOf((first + i) * VTD_PAGE_SIZE));
      this.slotOrig.set(e, orig);
    };
  }

  /** The target of a physical page as the path maps it (ground truth and 6.1's paddr). */
  physTarget(pfn: number, slotOrig?: Map<number, number>): string {
    const addr = pfn * VTD_PAGE_SIZE;
    if (inRegion(SWIOTLB_REGION, addr)) {
      const orig = slotOrig?.get(pfn) ?? this.runner.model.machine.swiotlb.origOf(addr);
      return orig < 0 ? `s:${hex(addr)}` : `b:${hex(orig)}`;
    }
    if (inRegion(COHERENT_REGION, addr)) {
      // a freed buffer's pages may back a newer one: live buffers first
      for (const live of [true, false]) {
        for (const m of this.runner.mappings.values()) {
          if (m.live !== live) continue;
          const k = m.coherent?.pfns.indexOf(pfn) ?? -1;
          if (k >= 0) return `c:${m.name}:${k}`;
        }
      }
      return `c:?:${hex(addr)}`;
    }
    return `p:${hex(addr)}`;
  }

  private pages(dev: string): Map<number, string> {
    let s = this.shadow.get(dev);
    if (s === undefined) {
      s = new Map();
      this.shadow.set(dev, s);
    }
    return s;
  }

  private touch(dev: string, pfn: number): void {
    let t = this.touched.get(dev);
    if (t === undefined) {
      t = new Set();
      this.touched.set(dev, t);
    }
    t.add(pfn);
  }

  /**
   * Apply one step's events. `stepDevice` is the device of the DMA-API call the step made (6.1's
   * events belong to it).
   */
  apply(events: readonly TraceEvent[], stepDevice: Device | undefined): StepAccount {
    const acc: StepAccount = { mapped: [], unmapped: [], problems: [] };
    if (!events.some((e) => ACCOUNTED.has(e.event))) return acc;
    const map = (dev: string, iovaPfn: number, n: number, target: (i: number) => string): void => {
      const s = this.pages(dev);
      for (let i = 0; i < n; i++) {
        const t = target(i);
        if (s.has(iovaPfn + i)) acc.problems.push(`a map event for IOVA page ${hex((iovaPfn + i) * VTD_PAGE_SIZE)} of ${dev}, which is already mapped`);
        s.set(iovaPfn + i, t);
        this.touch(dev, iovaPfn + i);
        acc.mapped.push(`${dev} ${t}`);
      }
    };
    const unmap = (dev: string, iovaPfn: number, n: number): void => {
      const s = this.pages(dev);
      let missing = 0;
      for (let i = 0; i < n; i++) {
        const t = s.get(iovaPfn + i);
        if (t === undefined) {
          missing++;
          continue;
        }
        s.delete(iovaPfn + i);
        this.touch(dev, iovaPfn + i);
        acc.unmapped.push(`${dev} ${t}`);
      }
      if (missing > 0) acc.problems.push(`an unmap event for ${missing} IOVA page(s) from ${hex(iovaPfn * VTD_PAGE_SIZE)} of ${dev} that are not mapped`);
    };
    for (const e of events) {
      if (!ACCOUNTED.has(e.event)) continue;
      const f = fields(e);
      const dev5 = e.fields?.dev;
      switch (e.event) {
        // ---- 5.10 intel_iommu:* (kernel-semantics 2.11, 10.11)
        case 'map_single': {
          // dev_addr and phys_addr keep the offset; size counts whole pages from their page
          const p = Number(f['phys_addr']! >> 12n);
          map(dev5!, Number(f['dev_addr']! >> 12n), Number(f['size']! >> 12n), (i) => this.physTarget(p + i));
          break;
        }
        case 'map_sg': {
          const p = Number(f['phys_addr']! >> 12n);
          map(dev5!, Number(f['dev_addr']! >> 12n), nrPages(f['dev_addr']!, f['size']!), (i) => this.physTarget(p + i));
          break;
        }
        case 'bounce_map_single': {
          // the caller's buffer; bounced (to a slot holding it from offset 0) unless page-aligned
          const phys = f['phys_addr']!;
          const size = f['size']!;
          const bounced = ((phys | size) & 0xfffn) !== 0n;
          const n = nrPages(0n, size);
          map(dev5!, Number(f['dev_addr']! >> 12n), n, (i) => (bounced ? `b:${hex(Number(phys) + i * VTD_PAGE_SIZE)}` : this.physTarget(Number(phys >> 12n) + i)));
          break;
        }
        case 'unmap_single':
          unmap(dev5!, Number(f['dev_addr']! >> 12n), nrPages(f['dev_addr']!, f['size']!));
          break;
        case 'unmap_sg':
        case 'bounce_unmap_single':
        case 'bounce_map_sg':
          // repeat what the unmap_single or bounce_map_single before them said
          break;
        // ---- 6.1 iommu:map / iommu:unmap (kernel-semantics 9.6)
        case 'map': {
          if (stepDevice === undefined) {
            acc.problems.push('a map event outside any DMA-API call');
            break;
          }
          const p = Number(f['paddr']! >> 12n);
          const orig = this.slotOrig.get(e);
          map(stepDevice.name, Number(f['iova']! >> 12n), Number(f['size']! >> 12n), (i) => this.physTarget(p + i, orig));
          break;
        }
        case 'unmap': {
          if (stepDevice === undefined) {
            acc.problems.push('an unmap event outside any DMA-API call');
            break;
          }
          unmap(stepDevice.name, Number(f['iova']! >> 12n), Number(f['unmapped_size']! >> 12n));
          break;
        }
        default:
          // qi_submit and the rest map nothing
          break;
      }
    }
    acc.mapped.sort();
    acc.unmapped.sort();
    return acc;
  }

  /**
   * Differences between a device's shadow and its present PTEs, as sentences (empty: none).
   * After each audit the shadow equals the PTEs (a problem is reported once, then resynced), so
   * only the pages that can have moved since are looked at: those whose leaf changed, those the
   * events touched, and those whose leaf maps a pool page (what a slot or coherent page stands
   * for changes without a PTE write).
   */
  audit(dev: Device): string[] {
    const changed = this.tracker.takeLeafChanges(dev);
    const touched = this.touched.get(dev.name);
    const pooled = this.tracker.pooledLeafPages(dev);
    if (changed.size === 0 && touched === undefined && pooled.length === 0) return [];
    // (an empty set from the tracker is its own: only a non-empty one is ours to add to)
    const look = changed.size > 0 ? changed : new Set<number>();
    if (touched !== undefined) {
      for (const p of touched) look.add(p);
      this.touched.delete(dev.name);
    }
    for (const p of pooled) look.add(p);
    const s = this.pages(dev.name);
    const truth = new Map<number, string>();
    const noEvent: number[] = [];
    const wrong: number[] = [];
    const gone: number[] = [];
    for (const pfn of [...look].sort((a, b) => a - b)) {
      const leaf = this.tracker.leafAt(dev, pfn);
      const u = s.get(pfn);
      if (leaf === undefined) {
        if (u !== undefined) gone.push(pfn);
        continue;
      }
      const t = this.physTarget(leaf.phys);
      truth.set(pfn, t);
      if (u === undefined) noEvent.push(pfn);
      else if (u !== t) wrong.push(pfn);
    }
    const list = (xs: number[]): string => `${xs.slice(0, 3).map((p) => hex(p * VTD_PAGE_SIZE)).join(', ')}${xs.length > 3 ? ', ...' : ''}`;
    const out: string[] = [];
    if (noEvent.length > 0) out.push(`${noEvent.length} IOVA page(s) of ${dev.name} mapped with no map event (${list(noEvent)})`);
    if (wrong.length > 0) out.push(`${wrong.length} IOVA page(s) of ${dev.name} mapped elsewhere than their map event says (${list(wrong)})`);
    if (gone.length > 0) {
      for (const p of gone) s.delete(p);
      out.push(`${gone.length} IOVA page(s) of ${dev.name} that a map event names are not mapped, and no unmap event said so (${list(gone)})`);
    }
    // resynchronise, so one problem is reported once
    for (const p of noEvent) s.set(p, truth.get(p)!);
    for (const p of wrong) s.set(p, truth.get(p)!);
    return out;
  }
}

/** The targets in a but not in b, as multisets of sorted strings. */
export function multisetMinus(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const x of b) left.set(x, (left.get(x) ?? 0) + 1);
  const out: string[] = [];
  for (const x of a) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else out.push(x);
  }
  return out;
}
