/**
 * Reading ftrace text: `/sys/kernel/tracing/trace` (with or without the irqs-off/need-resched
 * flag columns) and `trace-cmd report` output, one event a line. Only the IOMMU events the two
 * modelled releases print are understood (kernel-semantics 2.11/10.11 for 5.10's intel_iommu:*,
 * 9.6 for 6.1's iommu:map/unmap); every other event is counted and skipped.
 */
import { MAX_BUFFER, MAX_SG_ENTRIES } from '../fields.js';
import { VTD_PAGE_MASK_LOW } from '../../../vtd/regs.js';
import { must } from '../../../kernel/assert.js';

export class TraceImportError extends Error {}

/** A problem with the trace text: one line, naming where. */
export function traceFail(line: number, msg: string): never {
  throw new TraceImportError(`line ${line}: ${msg}`);
}

/** An event line as ftrace prints it. */
export interface TraceLine {
  /** 1-based, in the file */
  line: number;
  cpu: number;
  /** the event's name without its system ("map_sg"; trace-cmd may print "intel_iommu:map_sg") */
  event: string;
  text: string;
}

/**
 * TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: TEXT. The task may hold spaces and dashes (the PID is
 * the last "-digits" before the CPU); trace-cmd adds a "(TGID)" column and may drop the flags.
 */
const LINE = /^\s*(.+?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d{1,4})\]\s+(?:[.a-zA-Z0-9]{4,5}\s+)?(\d+\.\d+):\s+([\w:]+):\s?(.*)$/;

/** Lines that are not events: comments, blank lines, and the per-CPU buffer markers. */
function isNoise(s: string): boolean {
  const t = s.trim();
  return t === '' || t.startsWith('#') || /^CPU:?\s*\d+/.test(t) || /^cpus=\d+$/.test(t) || t.startsWith('version =');
}

/**
 * A ring buffer that overflowed: ftrace's "CPU:0 [LOST 500 EVENTS]", trace-cmd's "CPU:0 [500
 * EVENTS DROPPED]". Maps or unmaps are missing, so the calls cannot be recovered.
 */
const LOST = /^CPU:?\s*\d+\s*\[(?:LOST\s+\d+\s+EVENTS|(?:\d+\s+)?EVENTS\s+DROPPED)\]/i;

/** The event lines of a trace, in order. A line that is neither an event nor noise is an error. */
export function readTraceLines(text: string): TraceLine[] {
  const out: TraceLine[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((s, k) => {
    if (LOST.test(s.trim())) traceFail(k + 1, `the trace lost events here (${clip(s)}): record again with a larger buffer_size_kb`);
    if (isNoise(s)) return;
    const m = LINE.exec(s);
    if (m === null) traceFail(k + 1, `not an ftrace event line (expected "TASK-PID [CPU] ... TIMESTAMP: EVENT: ..."): ${clip(s)}`);
    const name = group(m, 5);
    const event = name.includes(':') ? name.slice(name.lastIndexOf(':') + 1) : name;
    out.push({ line: k + 1, cpu: Number(m[3]), event, text: group(m, 6) });
  });
  return out;
}

function clip(s: string): string {
  const t = s.trim();
  return t.length > 60 ? `${t.slice(0, 57)}...` : t;
}

// ---- the IOMMU events' texts

/** 5.10 intel_iommu:map_single / bounce_map_single (class dma_map) */
export interface DmaMapEvent {
  dev: string;
  devAddr: bigint;
  physAddr: bigint;
  size: number;
}

/** 5.10 intel_iommu:map_sg / bounce_map_sg (class dma_map_sg): entry `index` of `total` */
export interface DmaMapSgEvent extends DmaMapEvent {
  index: number;
  total: number;
}

/** 5.10 intel_iommu:unmap_single / unmap_sg / bounce_unmap_single (class dma_unmap) */
export interface DmaUnmapEvent {
  dev: string;
  devAddr: bigint;
  size: number;
}

/** 6.1 iommu:map */
export interface IommuMapEvent {
  iova: bigint;
  paddr: bigint;
  size: number;
}

/** 6.1 iommu:unmap */
export interface IommuUnmapEvent {
  iova: bigint;
  size: number;
  unmappedSize: number;
}

const HEX = '0x([0-9a-fA-F]{1,16})';
const DEC = '(\\d{1,20})';
const DEV = '([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7])';
const RE_DMA_MAP = new RegExp(`^dev=${DEV} dev_addr=${HEX} phys_addr=${HEX} size=${DEC}$`);
const RE_DMA_MAP_SG = new RegExp(`^dev=${DEV} \\[(\\d+)/(\\d+)\\] dev_addr=${HEX} phys_addr=${HEX} size=${DEC}$`);
const RE_DMA_UNMAP = new RegExp(`^dev=${DEV} dev_addr=${HEX} size=${DEC}$`);
const RE_IOMMU_MAP = new RegExp(`^IOMMU: iova=${HEX} - ${HEX} paddr=${HEX} size=${DEC}$`);
const RE_IOMMU_UNMAP = new RegExp(`^IOMMU: iova=${HEX} - ${HEX} size=${DEC} unmapped_size=${DEC}$`);

/** Group k of a match: no group of the event patterns is optional, so a match has each one. */
function group(m: RegExpExecArray, k: number): string {
  return must(m[k], 'a group of a matched event line');
}

function match(re: RegExp, l: TraceLine, form: string): RegExpExecArray {
  const m = re.exec(l.text.trim());
  if (m === null) traceFail(l.line, `${l.event}: expected "${form}", got ${JSON.stringify(clip(l.text))}`);
  return m;
}

/** A size field: an integer the scenario can hold (a buffer of at most MAX_BUFFER, 1 GiB). */
function size(l: TraceLine, v: string, field: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n > MAX_BUFFER) traceFail(l.line, `${l.event}: ${field}=${v} is larger than the 1 GiB a scenario buffer may be`);
  return n;
}

/** Real physical addresses must be ones a PTE can hold (below 2^52). */
const REAL_PHYS_LIMIT = 1n << 52n;

/** The physical range an event maps, from `from` (its first byte or page) for `n` bytes, must fit a PTE. */
function physRange(l: TraceLine, phys: bigint, from: bigint, n: number): void {
  if (from + BigInt(n) > REAL_PHYS_LIMIT) traceFail(l.line, `physical address 0x${phys.toString(16)} is beyond what a PTE can hold (2^52)`);
}

export function parseDmaMap(l: TraceLine): DmaMapEvent {
  const m = match(RE_DMA_MAP, l, 'dev=DDDD:BB:DD.F dev_addr=0x... phys_addr=0x... size=N');
  const e = { dev: group(m, 1).toLowerCase(), devAddr: BigInt(`0x${m[2]}`), physAddr: BigInt(`0x${m[3]}`), size: size(l, group(m, 4), 'size') };
  // map_single's size counts whole pages from phys_addr's page (__intel_map_single); bounce_map_single's is the length
  physRange(l, e.physAddr, l.event === 'map_single' ? e.physAddr & ~BigInt(VTD_PAGE_MASK_LOW) : e.physAddr, e.size);
  return e;
}

export function parseDmaMapSg(l: TraceLine): DmaMapSgEvent {
  const m = match(RE_DMA_MAP_SG, l, 'dev=DDDD:BB:DD.F [i/n] dev_addr=0x... phys_addr=0x... size=N');
  const index = Number(m[2]);
  const total = Number(m[3]);
  if (index < 1 || index > total || total > MAX_SG_ENTRIES) traceFail(l.line, `${l.event}: entry [${index}/${total}] is not one of 1..${total} (at most ${MAX_SG_ENTRIES} entries)`);
  const e = { dev: group(m, 1).toLowerCase(), index, total, devAddr: BigInt(`0x${m[4]}`), physAddr: BigInt(`0x${m[5]}`), size: size(l, group(m, 6), 'size') };
  physRange(l, e.physAddr, e.physAddr, e.size);
  return e;
}

export function parseDmaUnmap(l: TraceLine): DmaUnmapEvent {
  const m = match(RE_DMA_UNMAP, l, 'dev=DDDD:BB:DD.F dev_addr=0x... size=N');
  return { dev: group(m, 1).toLowerCase(), devAddr: BigInt(`0x${m[2]}`), size: size(l, group(m, 3), 'size') };
}

export function parseIommuMap(l: TraceLine): IommuMapEvent {
  const m = match(RE_IOMMU_MAP, l, 'IOMMU: iova=0x... - 0x... paddr=0x... size=N');
  const e = { iova: BigInt(`0x${m[1]}`), paddr: BigInt(`0x${m[3]}`), size: size(l, group(m, 4), 'size') };
  if (BigInt(`0x${m[2]}`) !== e.iova + BigInt(e.size)) traceFail(l.line, 'map: the IOVA range does not end at iova + size');
  physRange(l, e.paddr, e.paddr, e.size);
  return e;
}

export function parseIommuUnmap(l: TraceLine): IommuUnmapEvent {
  const m = match(RE_IOMMU_UNMAP, l, 'IOMMU: iova=0x... - 0x... size=N unmapped_size=N');
  return { iova: BigInt(`0x${m[1]}`), size: size(l, group(m, 3), 'size'), unmappedSize: size(l, group(m, 4), 'unmapped_size') };
}

/** The release whose driver prints an event (undefined: not an event the import reads). */
export function releaseOfEvent(event: string): '5.10' | '6.1' | undefined {
  switch (event) {
    case 'map_single':
    case 'map_sg':
    case 'unmap_single':
    case 'unmap_sg':
    case 'bounce_map_single':
    case 'bounce_map_sg':
    case 'bounce_unmap_single':
      return '5.10';
    case 'map':
    case 'unmap':
      return '6.1';
    default:
      return undefined;
  }
}
