/**
 * One simulated machine: the memory, the VT-d unit and the kernel infrastructure one DMA path
 * runs on. Each path gets its own machine with the same platform configuration, so both start
 * from the same self-describing memory and make their allocations in their own, deterministic
 * order.
 */
import { vtdConfig, type Agaw, type Superpage } from '../vtd/caps.js';
import { parseBdf } from '../vtd/entries.js';
import { VtdHardware } from '../vtd/hardware.js';
import { type DmaReadResult, type DmaWriteResult } from '../vtd/dma.js';
import { PhysMemory } from '../vtd/memory.js';
import { PAGE_TABLE_REGION } from '../vtd/regions.js';
import { BUG, must } from '../kernel/assert.js';
import { SimClock } from '../kernel/clock.js';
import { DmarUnit } from '../intel-common/dmar.js';
import { IOVA_FQ_TIMEOUT_NS } from '../kernel/flush-queue.js';
import type { PageSource } from '../intel-common/intel-pgtable.js';
import { KernelLog } from '../kernel/log.js';
import { PageAllocator } from '../kernel/page-alloc.js';
import type { Release } from '../kernel/release.js';
import { Swiotlb } from '../kernel/swiotlb.js';
import { TraceRing } from '../kernel/trace.js';

export interface PlatformConfig {
  agaw: Agaw;
  cachingMode: boolean;
  zlr: boolean;
  superpages: Superpage[];
  /** false: lazy (flush queue) */
  strict: boolean;
  forcedac: boolean;
  cpus: number;
}

export const DEFAULT_PLATFORM: PlatformConfig = {
  agaw: 39,
  cachingMode: false,
  zlr: false,
  superpages: ['2M', '1G'],
  strict: true,
  forcedac: false,
  cpus: 1,
};

/** Time one scenario step takes on the simulated clock (trace timestamps move by it). */
export const STEP_TICK_NS = 1_000;

/**
 * QEMU q35's own PCI functions, each its own IOMMU group, probed with the scenario's devices in
 * bus order: their default domains take domain ids before and after the scenario's devices
 * (the recordings' edu at 00:02.0 got DID 4 after 00:00.0 and 00:01.0 took 2 and 3).
 */
export const Q35_BUILTIN_GROUPS: readonly string[] = ['00:00.0', '00:01.0', '00:1f.0'];

/**
 * The probe order of the IOMMU groups: the scenario's devices and q35's own functions (those the
 * scenario does not replace) by bus address. Each group's default domain takes the next domain id.
 */
export function probeOrder<D extends { sid: number }>(devices: readonly D[]): Array<D | number> {
  const builtins = Q35_BUILTIN_GROUPS.map((b) => must(parseBdf(b), `q35's ${b} as a bus address`)).filter((sid) => !devices.some((d) => d.sid === sid));
  const key = (g: D | number): number => (typeof g === 'number' ? g : g.sid);
  return [...devices, ...builtins].sort((a, b) => key(a) - key(b));
}

/**
 * The unit's page-table pages: lowest free page first, freed pages reused. The pages handed out
 * are kept in a set (one add or delete per table page, beside zeroing 4 KiB): a page freed twice,
 * or never handed out, is a BUG at once, and the table checks ask whether an entry's page is one.
 */
class PageTablePages implements PageSource {
  private readonly alloc0: PageAllocator;
  private readonly live = new Set<number>();
  constructor(memory: PhysMemory) {
    this.alloc0 = new PageAllocator(memory, PAGE_TABLE_REGION);
  }
  alloc(): number {
    const p = this.alloc0.allocPages(0);
    if (p < 0) throw new Error('page-table region exhausted');
    this.live.add(p);
    return p;
  }
  free(pfn: number): void {
    if (!this.live.delete(pfn)) BUG(`free_pgtable_page of 0x${pfn.toString(16)}, a page not handed out (or freed twice)`);
    this.alloc0.freePages(pfn, 0);
  }
  handedOut(pfn: number): boolean {
    return this.live.has(pfn);
  }
  get inUse(): number {
    return this.alloc0.allocatedPages;
  }
}

export class Machine {
  readonly memory = new PhysMemory();
  readonly clock = new SimClock();
  readonly hw: VtdHardware;
  readonly log: KernelLog;
  readonly trace: TraceRing;
  readonly ptPages: PageTablePages;
  readonly coherentPages: PageAllocator;
  readonly swiotlb: Swiotlb;
  readonly dmar: DmarUnit;
  /** events the drivers count for coverage reports */
  readonly stats = { superpageLeaves: 0, iovaAllocFailures: 0 };

  constructor(
    readonly release: Release,
    readonly platform: PlatformConfig,
  ) {
    this.hw = new VtdHardware(
      vtdConfig({ agaw: platform.agaw, cachingMode: platform.cachingMode, zlr: platform.zlr, superpages: platform.superpages }),
      this.memory,
    );
    this.log = new KernelLog(this.clock);
    this.trace = new TraceRing(release, this.clock);
    this.ptPages = new PageTablePages(this.memory);
    this.coherentPages = new PageAllocator(this.memory);
    this.swiotlb = new Swiotlb(release, this.memory, this.log, platform.cpus);
    this.dmar = new DmarUnit(release, this.hw, this.ptPages, this.trace, this.log);
  }

  /** Start scenario step `step` on `cpu`: time moves on (timers may fire), events get the step. */
  enterStep(step: number, cpu: number): void {
    this.trace.step = step;
    this.log.step = step;
    this.trace.cpu = cpu;
    this.clock.advance(STEP_TICK_NS);
  }

  /** The simulated clock passes the flush-queue timeout: due timers fire. */
  passFlushQueueTimeout(): void {
    this.clock.advance(IOVA_FQ_TIMEOUT_NS);
  }

  /** A device read through the IOMMU; a fault raises the fault interrupt, as on hardware. */
  deviceRead(sid: number, iova: bigint, len: number): DmaReadResult {
    const r = this.hw.dmaRead(sid, iova, len);
    if (r.fault !== undefined) this.dmar.handleFaults();
    return r;
  }

  deviceWrite(sid: number, iova: bigint, data: Uint8Array): DmaWriteResult {
    const r = this.hw.dmaWrite(sid, iova, data);
    if (r.fault !== undefined) this.dmar.handleFaults();
    return r;
  }
}
