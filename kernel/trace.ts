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

/**
 * The numbers an event prints, by the print format's field names (and the device name of 5.10's
 * events), so readers never parse the text back.
 */
export interface TraceFields {
  dev?: string;
  num: Record<string, bigint>;
}

/** An event's print format (TP_printk) applied to its fields. */
export type TracePrint = (f: TraceFields) => string;

/**
 * One recorded event. Its text is printed from its fields when first read, not when recorded:
 * a driver holding a million live mappings keeps a million map events, and their text, mostly
 * never read, would be two thirds of the memory they take (the numbers print the same either
 * way).
 */
export class TraceEvent {
  #print: TracePrint | string;

  constructor(
    /** scenario step that emitted it (-1: set-up) */
    readonly step: number,
    readonly cpu: number,
    /** simulated clock, ns */
    readonly tsNs: number,
    readonly system: TraceSystem,
    readonly event: string,
    print: TracePrint | string,
    readonly fields?: TraceFields,
  ) {
    this.#print = print;
  }

  /** byte for byte what the event's print format gives */
  get text(): string {
    const p = this.#print;
    if (typeof p === 'string') return p;
    if (this.fields === undefined) throw new Error(`trace event ${this.system}:${this.event} has a print format but no fields`);
    return p(this.fields);
  }

  /** JSON and structured copies see the text as a field, as when it was one */
  toJSON(): { step: number; cpu: number; tsNs: number; system: TraceSystem; event: string; text: string; fields?: TraceFields } {
    const { step, cpu, tsNs, system, event, text, fields } = this;
    return fields === undefined ? { step, cpu, tsNs, system, event, text } : { step, cpu, tsNs, system, event, text, fields };
  }
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

/** iommu:map's print format and fields, for TraceRing.emit(system, event, ...) */
export function iommuMapEvent(iova: bigint, paddr: bigint, size: number): [TracePrint, TraceFields] {
  return [printIommuMap, { num: { iova, paddr, size: BigInt(size) } }];
}

export function fmtIommuUnmap(iova: bigint, size: number, unmappedSize: number): string {
  return `IOMMU: iova=${hx16(iova)} - ${hx16(iova + BigInt(size))} size=${size} unmapped_size=${unmappedSize}`;
}

// ---- the same print formats over an event's fields (TraceEvent.text) ----

function num(f: TraceFields, name: string): bigint {
  const v = f.num[name];
  if (v === undefined) throw new Error(`trace event field ${name} missing`);
  return v;
}

function devName(f: TraceFields): string {
  if (f.dev === undefined) throw new Error('trace event field dev missing');
  return f.dev;
}

export const printDmaMap: TracePrint = (f) => fmtDmaMap(devName(f), num(f, 'dev_addr'), num(f, 'phys_addr'), Number(num(f, 'size')));
export const printDmaUnmap: TracePrint = (f) => fmtDmaUnmap(devName(f), num(f, 'dev_addr'), Number(num(f, 'size')));
export const printDmaMapSg: TracePrint = (f) =>
  fmtDmaMapSg(devName(f), Number(num(f, 'index')), Number(num(f, 'total')), num(f, 'dev_addr'), num(f, 'phys_addr'), Number(num(f, 'size')));
export const printIommuMap: TracePrint = (f) => fmtIommuMap(num(f, 'iova'), num(f, 'paddr'), Number(num(f, 'size')));
export const printIommuUnmap: TracePrint = (f) => fmtIommuUnmap(num(f, 'iova'), Number(num(f, 'size')), Number(num(f, 'unmapped_size')));

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

  /** print: the text itself, or the print format applied to fields when the text is read */
  emit(system: TraceSystem, event: string, print: TracePrint | string, fields?: TraceFields): void {
    if (!this.enabled[system]) return;
    const e = new TraceEvent(this.step, this.cpu, this.clock.nowNs, system, event, print, fields);
    this.events.push(e);
    this.observer?.traceEmitted(e);
  }
}

/** The whole line /sys/kernel/tracing/trace shows for an event. */
export function renderTraceLine(e: Pick<TraceEvent, 'cpu' | 'tsNs' | 'event' | 'text'>, task = 'dmadiff', pid = 1): string {
  const cpu = String(e.cpu).padStart(3, '0');
  return `${task}-${pid} [${cpu}] ..... ${formatTimestamp(e.tsNs)}: ${e.event}: ${e.text}`;
}
