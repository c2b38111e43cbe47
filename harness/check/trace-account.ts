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
 * Targets are kept as numbers (targetCode) and spelt out only in a divergence's message: the
 * usual step, where both paths agree, compares sorted number arrays and builds no string.
 * 5.10's bounce_map_single names the caller's buffer, 6.1's iommu:map the swiotlb slot: both
 * become "b:" targets. 5.10 names the device on every event; 6.1's iommu events name none, so they
 * belong to the device of the DMA-API call that emitted them.
 */
import type { Device } from '../../kernel/device.js';
import { alignedNrpages } from '../../intel-common/intel-pgtable.js';
import { iovaOffset, iovaPfn, pageAligned } from '../../kernel/bits.js';
import type { TraceEvent, TraceObserver } from '../../kernel/trace.js';
import { COHERENT_REGION, SWIOTLB_REGION, inRegion } from '../../vtd/regions.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import type { PathRunner } from '../run/path-runner.js';
import { PageMap, PfnList } from './page-map.js';
import { reachTarget, type ReachTracker } from './reach-tracker.js';

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

const hex = (n: number): string => `0x${n.toString(16)}`;

/** aligned_nrpages of an event's fields; an event of size 0 touches nothing */
function nrPages(addr: bigint, size: bigint): number {
  return size <= 0n ? 0 : alignedNrpages(iovaOffset(addr), Number(size));
}

// ---- targets as numbers: value * 8 + kind, the value a byte address (< 2^39, PHYS_LIMIT) or a
// coherent buffer's interned name * 2^16 + its page (the coherent region holds 2^16 pages)
const T_PHYS = 0;
const T_BOUNCE = 1;
const T_SLOT = 2;
const T_COHERENT = 3;
const T_COHERENT_UNKNOWN = 4;
const KINDS = 8;
const COHERENT_PAGES = 2 ** 16;
/** an account entry: device index * DEVICE_UNIT + target (< 2^42); device indexes stay below MAX_DEVICES */
const DEVICE_UNIT = 2 ** 42;
/** how many devices a scenario may have: account entries stay exact numbers (< 2^53) */
export const MAX_DEVICES = 2 ** 11;

/**
 * The names of coherent buffers, as numbers both paths' accountants share: page k of buffer
 * NAME is the same target on both whatever physical pages each path gave it.
 */
export class TargetNames {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];

  id(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }

  /** A target as a maintainer reads it: "p:0x...", "b:0x...", "s:0x...", "c:NAME:k". */
  text(code: number): string {
    const kind = code % KINDS;
    const v = (code - kind) / KINDS;
    switch (kind) {
      case T_PHYS:
        return `p:${hex(v)}`;
      case T_BOUNCE:
        return `b:${hex(v)}`;
      case T_SLOT:
        return `s:${hex(v)}`;
      case T_COHERENT:
        return `c:${this.names[Math.floor(v / COHERENT_PAGES)]!}:${v % COHERENT_PAGES}`;
      default:
        return `c:?:${hex(v)}`;
    }
  }

  /** An account entry (device and target) as "DEVICE TARGET". */
  entryText(entry: number, devices: readonly Device[]): string {
    const k = Math.floor(entry / DEVICE_UNIT);
    return `${devices[k]!.name} ${this.text(entry - k * DEVICE_UNIT)}`;
  }
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

export class TraceAccountant implements TraceObserver {
  /** per device index: IOVA pfn -> target */
  private readonly shadow: PageMap[];
  private readonly byName = new Map<string, number>();
  private readonly devices: readonly Device[];

  /**
   * The original address each swiotlb page of an iommu:map event stood for when it was emitted:
   * a slot can be released again within the same call (an sg list unwinding). Kept until the
   * step's events are applied.
   */
  private readonly slotOrig = new Map<TraceEvent, Map<number, number>>();

  /**
   * per device index: the pool generation (swiotlb slot owners, coherent buffers) at its last
   * audit; while it stands, what its pool pages stand for has not moved
   */
  private readonly poolSeen: number[];

  /** per device index: IOVA pfns the events touched since its last audit */
  private readonly touched: PfnList[];

  /** the account apply() is building (one step's) */
  private acc: { mapped: number[]; unmapped: number[]; problems: string[] } = { mapped: [], unmapped: [], problems: [] };

  constructor(
    private readonly runner: PathRunner,
    private readonly tracker: ReachTracker,
    readonly names: TargetNames,
  ) {
    this.devices = runner.model.devices;
    if (this.devices.length > MAX_DEVICES) throw new Error(`trace accounting keeps at most ${MAX_DEVICES} devices`);
    this.devices.forEach((d, k) => this.byName.set(d.name, k));
    this.shadow = this.devices.map(() => new PageMap());
    this.touched = this.devices.map(() => new PfnList());
    this.poolSeen = this.devices.map(() => -1);
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

  /** The target of a physical page as the path maps it (ground truth and 6.1's paddr). */
  physTarget(pfn: number, slotOrig?: Map<number, number>): number {
    const addr = pfn * VTD_PAGE_SIZE;
    if (inRegion(SWIOTLB_REGION, addr)) {
      const orig = slotOrig?.get(pfn) ?? this.runner.model.machine.swiotlb.origOf(addr);
      return orig < 0 ? addr * KINDS + T_SLOT : orig * KINDS + T_BOUNCE;
    }
    if (inRegion(COHERENT_REGION, addr)) return this.coherentTargets().get(pfn) ?? addr * KINDS + T_COHERENT_UNKNOWN;
    return addr * KINDS + T_PHYS;
  }

  /** coherent page -> its target, and the runner's coherentGeneration it was built for */
  private coherent = new Map<number, number>();
  private coherentSeen = -1;

  /**
   * Each coherent page's target: the buffer holding it and its index there. A freed buffer's
   * pages may back a newer one, so live buffers come first, then in the order they were made.
   * Built again only when a buffer is made or freed, not looked up per page over every mapping.
   */
  private coherentTargets(): Map<number, number> {
    if (this.coherentSeen === this.runner.coherentGeneration) return this.coherent;
    const m = new Map<number, number>();
    for (const live of [true, false]) {
      for (const x of this.runner.mappings.values()) {
        if (x.live !== live || x.coherent === undefined) continue;
        x.coherent.pfns.forEach((pfn, k) => {
          if (!m.has(pfn)) m.set(pfn, (this.names.id(x.name) * COHERENT_PAGES + k) * KINDS + T_COHERENT);
        });
      }
    }
    this.coherent = m;
    this.coherentSeen = this.runner.coherentGeneration;
    return m;
  }

  /** A target as text, for messages. */
  targetText(code: number): string {
    return this.names.text(code);
  }

  /** An account entry as text ("DEVICE TARGET"), for messages. */
  entryText(entry: number): string {
    return this.names.entryText(entry, this.devices);
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
    for (let i = 0; i < n; i++) this.mapPage(dev, iovaPfn + i, this.physTarget(p + i, slotOrig));
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
    let any = false;
    for (let k = from; k < events.length && !any; k++) any = isAccounted(events[k]!);
    if (!any) return NOTHING;
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
          else for (let i = 0; i < n; i++) this.mapPage(dev, first + i, (Number(phys) + i * VTD_PAGE_SIZE) * KINDS + T_BOUNCE);
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

  /**
   * Differences between a device's shadow and its present PTEs, as sentences (empty: none).
   * After each audit the shadow equals the PTEs (a problem is reported once, then resynced), so
   * only the pages that can have moved since are looked at: those whose leaf changed, those the
   * events touched, and, when a slot or coherent buffer changed hands since, those whose leaf
   * maps a pool page (what such a page stands for changes without a PTE write).
   */
  audit(dev: Device): readonly string[] {
    const k = this.byName.get(dev.name)!;
    const changed = this.tracker.leafChanges(dev);
    const look = this.look;
    look.clear();
    look.takeFrom(changed);
    look.takeFrom(this.touched[k]!);
    const pool = this.runner.model.machine.swiotlb.origGeneration + this.runner.coherentGeneration;
    if (pool !== this.poolSeen[k]) {
      this.poolSeen[k] = pool;
      this.tracker.addPooledLeafPages(dev, look);
    }
    const n = look.settle();
    if (n === 0) return NONE;
    const s = this.shadow[k]!;
    let noEvent: number[] | undefined;
    let wrong: number[] | undefined;
    let gone: number[] | undefined;
    let truth: Map<number, number> | undefined;
    for (let x = 0; x < n; x++) {
      const pfn = look.at(x);
      const leaf = this.tracker.leafTarget(dev, pfn);
      const u = s.get(pfn);
      if (leaf < 0) {
        if (u !== undefined) (gone ??= []).push(pfn);
        continue;
      }
      const t = this.physTarget(reachTarget(leaf));
      if (u === undefined) (noEvent ??= []).push(pfn);
      else if (u !== t) (wrong ??= []).push(pfn);
      else continue;
      (truth ??= new Map()).set(pfn, t);
    }
    if (noEvent === undefined && wrong === undefined && gone === undefined) return NONE;
    const list = (xs: number[]): string => `${xs.slice(0, 3).map((p) => hex(p * VTD_PAGE_SIZE)).join(', ')}${xs.length > 3 ? ', ...' : ''}`;
    const out: string[] = [];
    if (noEvent !== undefined) out.push(`${noEvent.length} IOVA page(s) of ${dev.name} mapped with no map event (${list(noEvent.sort(ascending))})`);
    if (wrong !== undefined) out.push(`${wrong.length} IOVA page(s) of ${dev.name} mapped elsewhere than their map event says (${list(wrong.sort(ascending))})`);
    if (gone !== undefined) {
      for (const p of gone) s.delete(p);
      out.push(`${gone.length} IOVA page(s) of ${dev.name} that a map event names are not mapped, and no unmap event said so (${list(gone.sort(ascending))})`);
    }
    // resynchronise, so one problem is reported once
    if (truth !== undefined) for (const [p, t] of truth) s.set(p, t);
    return out;
  }

  /** the pages an audit looks at (kept between audits: no set made per step) */
  private readonly look = new PfnList();
}

const NONE: readonly string[] = Object.freeze([]);

function ascending(a: number, b: number): number {
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

/** The entries in a but not in b, as multisets of ascending arrays (one merge pass). */
export function multisetMinus(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j]! < x) j++;
    if (j < b.length && b[j] === x) j++;
    else out.push(x);
  }
  return out;
}

/** Whether two ascending arrays hold the same entries. */
export function sameEntries(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
