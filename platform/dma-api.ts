/**
 * DmaPath, the interface both models implement (DESIGN.md): the DMA API as a driver calls it
 * (include/linux/dma-mapping.h) for one release -- dma_map_page/dma_unmap_page, dma_map_sg/
 * dma_unmap_sg (with the original nents), dma_alloc_coherent/dma_free_coherent, the sync calls and
 * the mask setters -- plus the read-only views the checker needs (translations, present PTEs,
 * leaks, counters). Each path owns its machine; the harness drives a model only through this.
 */
import type { DmaDirection, Device } from '../kernel/device.js';
import type { FlushQueue } from '../kernel/flush-queue.js';
import type { DomainPgtable, IntelPageTable, PresentLeaf } from '../intel-common/intel-pgtable.js';
import type { IovaDomain } from '../kernel/iova.js';
import type { Machine } from './machine.js';
import type { Release } from '../kernel/release.js';
import type { SgTable } from '../kernel/scatterlist.js';
import { must } from '../kernel/assert.js';

/** A coherent allocation as the driver holds it: the handle and the CPU's view (pages). */
export interface CoherentAlloc {
  handle: bigint;
  size: number;
  /** physical page frames backing the buffer, in CPU order */
  pfns: number[];
  /** model-private bookkeeping to free it */
  readonly token: unknown;
}

export interface LeakReport {
  /** IOVA ranges still allocated (not counting reservations and ranges parked in rcaches) */
  liveIovas: Array<{ pfnLo: number; pfnHi: number }>;
  /** present leaf PTEs: [iova pfn, phys pfn, pages] */
  presentPtes: Array<{ iovaPfn: number; physPfn: number; pages: number }>;
  busySwiotlbSlots: number;
  /** flush-queue entries not yet freed */
  queued: number;
}

/** What a path did that a coverage report counts. */
export interface PathStats {
  rcacheHits: number;
  /** failed tree searches (a 32-bit-first attempt that found no room counts) */
  iovaSearchFailures: number;
  fqFullFlushes: number;
  fqTimerFlushes: number;
  swiotlbMaps: number;
  superpageLeaves: number;
  cmMapFlushes: number;
  /** 6.1 IOVA searches that succeeded only in the retry pass from the top */
  iovaRetrySuccesses: number;
  /** alloc_iova_fast failures that emptied a non-empty depot magazine before retrying (6.1) */
  depotFlushes: number;
  /** alloc_iova_fast retries after emptying the range caches */
  rcacheFlushRetries: number;
}

export interface DmaPath {
  readonly release: Release;
  readonly machine: Machine;
  device(id: string): Device;
  readonly devices: readonly Device[];
  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, cpu: number): bigint;
  unmapPage(dev: Device, addr: bigint, size: number, dir: DmaDirection, cpu: number): void;
  /** returns the mapped count (0 on failure, as dma_map_sg does) */
  mapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): number;
  unmapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): void;
  syncSingle(dev: Device, addr: bigint, size: number, dir: DmaDirection, forCpu: boolean): void;
  syncSg(dev: Device, sgt: SgTable, dir: DmaDirection, forCpu: boolean): void;
  allocCoherent(dev: Device, size: number, cpu: number): CoherentAlloc | null;
  freeCoherent(dev: Device, buf: CoherentAlloc, cpu: number): void;
  /** dma_set_mask / dma_set_coherent_mask: false is -EIO */
  setDmaMask(dev: Device, mask: bigint): boolean;
  setCoherentMask(dev: Device, mask: bigint): boolean;
  /** the physical address a handle translates to in the device's domain (0 if none) */
  iovaToPhys(dev: Device, addr: bigint): bigint;
  /** the same at page granularity, on numbers: the physical pfn behind an IOVA pfn (-1 if none) */
  iovaPfnToPhysPfn(dev: Device, pfn: number): number;
  /** every present leaf of the device's domain */
  presentLeaves(dev: Device): PresentLeaf[];
  /** the device's domain page table: its root page (-1 if none) and agaw, as the kernel keeps them */
  domainPgtable(dev: Device): DomainPgtable;
  leaks(): LeakReport;
  stats(): PathStats;
}

/** What a path's DMA domains hold that a leak report and the stats read. */
export interface DomainState {
  iovad: IovaDomain;
  fq: FlushQueue | null;
  tables: DomainPgtable;
}

/** The leak report of a path: in-use IOVAs, present leaves, busy slots, queued entries. */
export function collectLeaks(machine: Machine, pt: IntelPageTable, domains: Iterable<DomainState>): LeakReport {
  const r: LeakReport = { liveIovas: [], presentPtes: [], busySwiotlbSlots: machine.swiotlb.usedSlots, queued: 0 };
  for (const d of domains) {
    r.liveIovas.push(...d.iovad.inUseRanges());
    for (const l of pt.leaves(d.tables)) r.presentPtes.push({ iovaPfn: l.iovaPfn, physPfn: l.physPfn, pages: l.pages });
    if (d.fq !== null) r.queued += d.fq.pending;
  }
  return r;
}

/** Scenario device ids to the path's own device structures. */
export class DeviceTable {
  private readonly byId = new Map<string, Device>();

  constructor(devices: readonly Device[], ids: readonly string[]) {
    devices.forEach((d, i) => this.byId.set(must(ids[i], `a scenario id for ${d.name}`), d));
  }

  get(id: string): Device {
    const d = this.byId.get(id);
    if (d === undefined) throw new Error(`unknown device ${id}`);
    return d;
  }
}

/** Sum the counters of a path's IOVA domains and flush queues into its stats. */
export function collectStats(machine: Machine, domains: Iterable<{ iovad: IovaDomain; fq: FlushQueue | null }>): PathStats {
  const s: PathStats = {
    rcacheHits: 0,
    iovaSearchFailures: 0,
    fqFullFlushes: 0,
    fqTimerFlushes: 0,
    swiotlbMaps: machine.swiotlb.counters.maps,
    superpageLeaves: machine.stats.superpageLeaves,
    cmMapFlushes: machine.dmar.counters.mapFlushes,
    iovaRetrySuccesses: 0,
    depotFlushes: 0,
    rcacheFlushRetries: 0,
  };
  for (const d of domains) {
    s.rcacheHits += d.iovad.counters.rcacheHits;
    s.iovaSearchFailures += d.iovad.counters.slowPathFailures;
    s.iovaRetrySuccesses += d.iovad.counters.retrySuccesses;
    s.depotFlushes += d.iovad.counters.depotFlushes;
    s.rcacheFlushRetries += d.iovad.counters.rcacheFlushRetries;
    if (d.fq !== null) {
      s.fqFullFlushes += d.fq.counters.fullFlushes;
      s.fqTimerFlushes += d.fq.counters.timerFlushes;
    }
  }
  return s;
}
