/**
 * Shared helpers for the generic-path suites (Linux 6.1.192's iommu_dma_ops over the converted
 * VT-d iommu_ops, `createPath('dma-iommu', ...)`).
 *
 * A scenario is written as plain dmadiff-scenario/1 JSON, parsed by the harness's validator and
 * run step by step on the generic path; what a test wants to look at afterwards is kept: the
 * step results, the queued-invalidation descriptors each step made the hardware process, the
 * trace events and the kernel log of each step.
 *
 * Nothing here computes what the model should answer. The only "expected value" helpers are the
 * self-describing memory pattern (DESIGN.md: every little-endian 64-bit word at physical address
 * p holds 0xA5 << 56 | p until written), the qi_submit text format of drivers/iommu/intel/trace.h
 * and the iommu:map/unmap print formats of include/trace/events/iommu.h, each written out here
 * independently of kernel/trace.ts and vtd/memory.ts.
 */
import { readFileSync } from 'node:fs';
import type { GenericFaults } from '../../dma-iommu/dma-iommu-path.js';
import { PathRunner, type StepResult } from '../../harness/path-runner.js';
import { createPath } from '../../harness/paths.js';
import type { Scenario } from '../../harness/scenario.js';
import { parseScenario } from '../../harness/validation.js';
import type { DmaApi } from '../../kernel/dma-api.js';
import type { QiDesc } from '../../vtd/qi.js';

export type StepJson = Record<string, unknown>;

export interface DeviceJson {
  id: string;
  bdf: string;
  pci?: boolean;
  untrusted?: boolean;
  dmaMask: number;
  coherentMask?: number;
  maxSegSize?: number;
  segBoundaryMask?: string;
}

export interface PlatformJson {
  agaw?: 39 | 48 | 57;
  cachingMode?: boolean;
  zlr?: boolean;
  superpages?: Array<'2M' | '1G'>;
  strict?: boolean;
  forcedac?: boolean;
  cpus?: number;
}

/** The recordings' device: edu, a conventional PCI function at 00:02.0, here with a 64-bit mask. */
export const EDU: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 64 };

/**
 * The domain id of a lone scenario device at 00:02.0: ids 0 and 1 are reserved
 * (iommu_init_domains), q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3.
 */
export const EDU_DID = 4;

/** The IOAPIC window every x86 DMA domain reserves (intel_iommu_get_resv_regions). */
export const IOAPIC_RESERVED = { start: '0xfee00000', end: '0xfeefffff' };

export interface ScenarioOptions {
  platform?: PlatformJson;
  devices?: DeviceJson[];
  reserved?: Array<{ start: string; end: string }>;
  steps: StepJson[];
}

/** A dmadiff-scenario/1 document: the recordings' platform (aw 39, strict, no CM) unless overridden. */
export function scenarioJson(o: ScenarioOptions): Record<string, unknown> {
  return {
    format: 'dmadiff-scenario/1',
    platform: {
      agaw: 39,
      cachingMode: false,
      zlr: false,
      superpages: ['2M', '1G'],
      strict: true,
      forcedac: false,
      cpus: 1,
      ...o.platform,
    },
    devices: o.devices ?? [EDU],
    reserved: o.reserved ?? [IOAPIC_RESERVED],
    steps: o.steps,
  };
}

export interface Run {
  scenario: Scenario;
  model: DmaApi;
  runner: PathRunner;
  results: StepResult[];
  /** queued-invalidation descriptors processed during set-up ... */
  setupQi: QiDesc[];
  /** ... and during each step */
  qi: QiDesc[][];
}

/** Parse, build the generic path (with optional seeded bugs), run every step. */
export function run(json: unknown, faults: GenericFaults = {}, after?: (step: number, model: DmaApi, runner: PathRunner) => void): Run {
  const scenario = parseScenario(json);
  const model = createPath('dma-iommu', scenario, faults);
  const runner = new PathRunner(model, scenario);
  const hw = model.machine.hw;
  const setupQi = hw.qiLog.slice();
  const results: StepResult[] = [];
  const qi: QiDesc[][] = [];
  scenario.steps.forEach((st, i) => {
    const before = hw.qiLog.length;
    results.push(runner.run(i, st));
    qi.push(hw.qiLog.slice(before));
    after?.(i, model, runner);
  });
  return { scenario, model, runner, results, setupQi, qi };
}

/** Build the JSON and run it in one go. */
export function runSteps(o: ScenarioOptions, faults: GenericFaults = {}, after?: (step: number, model: DmaApi, runner: PathRunner) => void): Run {
  return run(scenarioJson(o), faults, after);
}

/** A recorded fixture, read relative to this folder (never from ../shared). */
export function loadFixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`../fixtures/oracle/${name}`, import.meta.url), 'utf8')) as unknown;
}

// ---------------------------------------------------------------- log and trace

/** Kernel log lines printed during step i (-1: set-up). */
export function logOf(r: Run, step: number): string[] {
  return r.model.machine.log.lines.filter((l) => l.step === step).map((l) => l.text);
}

export function allLog(r: Run): string[] {
  return r.model.machine.log.lines.map((l) => l.text);
}

/** Trace events of step i as "event: text", in emission order. */
export function traceOf(r: Run, step: number): string[] {
  return r.model.machine.trace.events.filter((e) => e.step === step).map((e) => `${e.event}: ${e.text}`);
}

/** 0x%016llx */
function hx16(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

/** include/trace/events/iommu.h (6.1) map: "IOMMU: iova=0x%016llx - 0x%016llx paddr=0x%016llx size=%zu" */
export function mapLine(iova: bigint, paddr: bigint, size: number): string {
  return `map: IOMMU: iova=${hx16(iova)} - ${hx16(iova + BigInt(size))} paddr=${hx16(paddr)} size=${size}`;
}

/** include/trace/events/iommu.h (6.1) unmap: "IOMMU: iova=0x%016llx - 0x%016llx size=%zu unmapped_size=%zu" */
export function unmapLine(iova: bigint, size: number, unmapped: number): string {
  return `unmap: IOMMU: iova=${hx16(iova)} - ${hx16(iova + BigInt(size))} size=${size} unmapped_size=${unmapped}`;
}

/** intel/trace.h qi_submit of a page-selective IOTLB invalidation: qw0 = DID<<16|DR|DW|PSI|type 2, qw1 = addr|AM */
export function psiLine(did: number, addr: bigint, am: number): string {
  const qw0 = (BigInt(did) << 16n) | 0xf2n;
  return `qi_submit: iotlb_inv dmar0: 0x${qw0.toString(16)} 0x${(addr | BigInt(am)).toString(16)} 0x0 0x0`;
}

/** intel/trace.h qi_submit of a domain-selective IOTLB invalidation: qw0 = DID<<16|DR|DW|DSI|type 2 */
export function dsiLine(did: number): string {
  const qw0 = (BigInt(did) << 16n) | 0xe2n;
  return `qi_submit: iotlb_inv dmar0: 0x${qw0.toString(16)} 0x0 0x0 0x0`;
}

// ---------------------------------------------------------------- invalidation descriptors

/** IOTLB invalidation descriptors (type 2) only, as [qw0, qw1]. */
export function iotlbDescs(descs: readonly QiDesc[]): Array<[bigint, bigint]> {
  return descs.filter((d) => (d.qw0 & 0xfn) === 2n).map((d) => [d.qw0, d.qw1]);
}

// ---------------------------------------------------------------- memory pattern

/** The untouched self-describing bytes of [addr, addr + len) as lower-case hex. */
export function patternHex(addr: number, len: number): string {
  let out = '';
  for (let i = 0; i < len; i++) {
    const a = addr + i;
    const word = (0xa5n << 56n) | BigInt(a - (a % 8));
    const byte = Number((word >> BigInt(8 * (a % 8))) & 0xffn);
    out += byte.toString(16).padStart(2, '0');
  }
  return out;
}

/** len bytes of value b, as hex. */
export function fillHex(b: number, len: number): string {
  return b.toString(16).padStart(2, '0').repeat(len);
}

export function hx(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

/** A step result's dma as a bigint (throws if the step did not map). */
export function dmaOf(res: StepResult | undefined): bigint {
  if (res?.dma === undefined) throw new Error(`no dma in ${JSON.stringify(res)}`);
  return BigInt(res.dma);
}

// ---------------------------------------------------------------- tables, read from memory

const ADDR_MASK = 0x000f_ffff_ffff_f000n;

/**
 * The leaf entry translating `iova` for source id `sid`, found by walking the tables in simulated
 * memory as the VT-d spec lays them out (root entry → context entry → second-level tables of
 * AW + 2 levels, PS bit 7 ending the walk), independently of the driver's table code.
 * null when a level is not present (bits 1:0 both clear).
 */
export function walkLeaf(model: DmaApi, sid: number, iova: bigint): { value: bigint; level: number } | null {
  const mem = model.machine.memory;
  const root = mem.readU64(model.machine.hw.rootTableAddress + (sid >>> 8) * 16);
  if ((root & 1n) === 0n) return null;
  const ctxAt = Number(root & ADDR_MASK) + (sid & 0xff) * 16;
  const lo = mem.readU64(ctxAt);
  const hi = mem.readU64(ctxAt + 8);
  if ((lo & 1n) === 0n) return null;
  let table = Number(lo & ADDR_MASK);
  const levels = Number(hi & 7n) + 2;
  const pfn = iova >> 12n;
  for (let level = levels; level >= 1; level--) {
    const idx = Number((pfn >> BigInt(9 * (level - 1))) & 0x1ffn);
    const e = mem.readU64(table + idx * 8);
    if ((e & 3n) === 0n) return null;
    if (level === 1 || (e & 0x80n) !== 0n) return { value: e, level };
    table = Number(e & ADDR_MASK);
  }
  return null;
}

// ---------------------------------------------------------------- oracle comparison

/** check.py's norm: 0x-strings become numbers (BigInt here: 64-bit values exceed 2^53). */
function norm(v: unknown): unknown {
  if (typeof v === 'string' && v.toLowerCase().startsWith('0x')) {
    try {
      return BigInt(v);
    } catch {
      return v;
    }
  }
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return v;
}

/**
 * check.py's sub(expected, actual): objects as subsets (every expected key present and equal),
 * lists of equal length compared elementwise, 0x-strings compared as numbers, anything else with
 * ==. Returns null on a match, else where and how it differs.
 */
export function subsetMismatch(expected: unknown, actual: unknown, where = '$'): string | null {
  if (typeof expected === 'object' && expected !== null && !Array.isArray(expected)) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return `${where}: want an object, got ${JSON.stringify(actual)}`;
    const a = actual as Record<string, unknown>;
    for (const [k, v] of Object.entries(expected as Record<string, unknown>)) {
      if (!(k in a)) return `${where}.${k}: missing (want ${JSON.stringify(v)})`;
      const m = subsetMismatch(v, a[k], `${where}.${k}`);
      if (m !== null) return m;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: want a list, got ${JSON.stringify(actual)}`;
    if (expected.length !== actual.length) return `${where}: want ${expected.length} elements, got ${actual.length}`;
    for (let i = 0; i < expected.length; i++) {
      const m = subsetMismatch(expected[i], actual[i], `${where}[${i}]`);
      if (m !== null) return m;
    }
    return null;
  }
  const e = norm(expected);
  const a = norm(actual);
  return e === a ? null : `${where}: want ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

// ---------------------------------------------------------------- step builders

export type DirJson = 'to_device' | 'from_device' | 'bidirectional';

export function mapPage(as: string, phys: number, size: number, dir: DirJson, dev = 'dev', cpu = 0): StepJson {
  return { op: 'map_page', dev, phys: hx(phys), size, dir, cpu, as };
}

export function mapSg(as: string, sg: Array<[number, number]>, dir: DirJson, dev = 'dev', cpu = 0): StepJson {
  return { op: 'map_sg', dev, dir, sg: sg.map(([phys, length]) => ({ phys: hx(phys), length })), cpu, as };
}

export function unmap(map: string, cpu = 0): StepJson {
  return { op: 'unmap', map, cpu };
}

export function allocCoherent(as: string, size: number, dev = 'dev'): StepJson {
  return { op: 'alloc_coherent', dev, size, as };
}

export function freeCoherent(map: string): StepJson {
  return { op: 'free_coherent', map };
}

export function dmaRead(map: string, offset: number, len: number): StepJson {
  return { op: 'dma_read', map, offset, len };
}

export function dmaWrite(map: string, offset: number, len: number, fill: number): StepJson {
  return { op: 'dma_write', map, offset, len, fill };
}

export function cpuRead(phys: number, len: number): StepJson {
  return { op: 'cpu_read', phys: hx(phys), len };
}

export function cpuWrite(phys: number, len: number, fill: number): StepJson {
  return { op: 'cpu_write', phys: hx(phys), len, fill };
}

export function sync(map: string, forCpu: boolean): StepJson {
  return { op: forCpu ? 'sync_for_cpu' : 'sync_for_device', map };
}

export function setMask(dev: string, bits: number, which: 'both' | 'streaming' | 'coherent' = 'both'): StepJson {
  return { op: 'set_dma_mask', dev, bits, which };
}

export function setMaxSeg(dev: string, size: number): StepJson {
  return { op: 'set_max_seg_size', dev, size };
}

export function setBoundary(dev: string, mask: number | bigint): StepJson {
  return { op: 'set_seg_boundary', dev, mask: hx(mask) };
}

export const FQ_TIMEOUT: StepJson = { op: 'flush_queue_timeout' };
