/**
 * The trace ring: ftrace events of the iommu and intel_iommu systems as each release prints them
 * in /sys/kernel/tracing/trace (kernel-semantics 2.11/10.11 for 5.10, 9.6 for 6.1).
 *
 * 5.10's intel_iommu:* DMA events belong to the legacy driver; 6.1 has iommu:map/unmap in the
 * "iova=START - END" form (not v5.11's) and intel_iommu:qi_submit for every queued descriptor.
 * The swiotlb system is off, as it was when the real kernels were recorded.
 */
import { formatTimestamp, type SimClock } from './clock.js';
import type { Release } from './release.js';

export type TraceSystem = 'iommu' | 'intel_iommu' | 'swiotlb';

export interface TraceEvent {
  /** scenario step that emitted it (-1: set-up) */
  step: number;
  cpu: number;
  /** simulated clock, ns */
  tsNs: number;
  system: TraceSystem;
  event: string;
  /** byte for byte what the event's print format gives */
  text: string;
  /**
   * The numbers the text prints, by the print format's field names (and the device name of
   * 5.10's events), so readers never parse the text back.
   */
  fields?: TraceFields;
}

export interface TraceFields {
  dev?: string;
  num: Record<string, bigint>;
}

/** %llx */
function hx(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16);
}

/** 0x%016llx */
function hx16(v: bigint): string {
  return `0x${hx(v).padStart(16, '0')}`;
}

// ---- 5.10 include/trace/events/intel_iommu.h ----

/** class dma_map: map_single, bounce_map_single */
export function fmtDmaMap(dev: string, devAddr: bigint, physAddr: bigint, size: number): string {
  return `dev=${dev} dev_addr=0x${hx(devAddr)} phys_addr=0x${hx(physAddr)} size=${size}`;
}

/** class dma_unmap: unmap_single, unmap_sg, bounce_unmap_single */
export function fmtDmaUnmap(dev: string, devAddr: bigint, size: number): string {
  return `dev=${dev} dev_addr=0x${hx(devAddr)} size=${size}`;
}

/** class dma_map_sg: map_sg, bounce_map_sg */
export function fmtDmaMapSg(dev: string, index: number, total: number, devAddr: bigint, physAddr: bigint, size: number): string {
  return `dev=${dev} [${index}/${total}] dev_addr=0x${hx(devAddr)} phys_addr=0x${hx(physAddr)} size=${size}`;
}

// ---- 6.1 include/trace/events/iommu.h ----

export function fmtIommuMap(iova: bigint, paddr: bigint, size: number): string {
  return `IOMMU: iova=${hx16(iova)} - ${hx16(iova + BigInt(size))} paddr=${hx16(paddr)} size=${size}`;
}

/** iommu:map's text and fields, for TraceRing.emit(system, event, ...) */
export function iommuMapEvent(iova: bigint, paddr: bigint, size: number): [string, TraceFields] {
  return [fmtIommuMap(iova, paddr, size), { num: { iova, paddr, size: BigInt(size) } }];
}

export function fmtIommuUnmap(iova: bigint, size: number, unmappedSize: number): string {
  return `IOMMU: iova=${hx16(iova)} - ${hx16(iova + BigInt(size))} size=${size} unmapped_size=${unmappedSize}`;
}

// ---- 6.1 drivers/iommu/intel/trace.h ----

/** qi_submit: "<type> <iommu>: 0x%llx 0x%llx 0x%llx 0x%llx" */
export function fmtQiSubmit(typeName: string, iommu: string, qw: readonly [bigint, bigint, bigint, bigint]): string {
  return `${typeName} ${iommu}: 0x${hx(qw[0])} 0x${hx(qw[1])} 0x${hx(qw[2])} 0x${hx(qw[3])}`;
}

export interface TraceObserver {
  traceEmitted(e: TraceEvent): void;
}

export class TraceRing {
  readonly events: TraceEvent[] = [];
  step = -1;
  cpu = 0;
  readonly enabled: Record<TraceSystem, boolean> = { iommu: true, intel_iommu: true, swiotlb: false };

  constructor(
    readonly release: Release,
    readonly clock: SimClock,
  ) {}

  /**
   * An observer told of each event as it is recorded (the harness reads state as of that
   * moment). An object with a method, not a closure: a closure called from here would be held by
   * this call site's feedback, and with it a whole finished run, through every scavenge.
   */
  observer: TraceObserver | undefined = undefined;

  emit(system: TraceSystem, event: string, text: string, fields?: TraceFields): void {
    if (!this.enabled[system]) return;
    const e: TraceEvent = { step: this.step, cpu: this.cpu, tsNs: this.clock.nowNs, system, event, text, ...(fields !== undefined ? { fields } : {}) };
    this.events.push(e);
    this.observer?.traceEmitted(e);
  }
}

/** The whole line /sys/kernel/tracing/trace shows for an event. */
export function renderTraceLine(e: TraceEvent, task = 'dmadiff', pid = 1): string {
  const cpu = String(e.cpu).padStart(3, '0');
  return `${task}-${pid} [${cpu}] ..... ${formatTimestamp(e.tsNs)}: ${e.event}: ${e.text}`;
}
