/**
 * Shared helpers for the legacy-intel (Linux 5.10.262 intel_dma_ops / bounce_dma_ops) suites.
 *
 * A scenario is built as plain dmadiff-scenario/1 JSON, parsed with the harness's validator,
 * run step by step on the legacy path, and everything a test wants to look at afterwards is
 * kept: the step results, the queued-invalidation descriptors each step made the hardware
 * process, the kernel log and the trace.
 *
 * Expected values never come from here: the only computation of "what should be" in this file
 * is the self-describing memory pattern, stated by the design (every little-endian 64-bit word
 * at physical address p reads 0xA5 << 56 | p until written) and computed independently of
 * vtd/memory.ts.
 */
import { readFileSync } from 'node:fs';
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

/** The recordings' device: edu at 00:02.0 (DID 4 after q35's 00:00.0 and 00:01.0), 64-bit mask. */
export const EDU: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 64 };

/** The prefix dev_printk gives the scenario devices' messages ("<driver> <device>: "). */
export const DEV_PREFIX = 'dmadiff 0000:00:02.0: ';

/** The domain id of the single scenario device at 00:02.0 (2 and 3 go to 00:00.0 and 00:01.0). */
export const EDU_DID = 4;

export interface ScenarioOptions {
  platform?: PlatformJson;
  devices?: DeviceJson[];
  reserved?: Array<{ start: string; end: string }>;
  steps: StepJson[];
}

/** A dmadiff-scenario/1 JSON document. */
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
    reserved: o.reserved ?? [],
    steps: o.steps,
  };
}

export interface Run {
  scenario: Scenario;
  model: DmaApi;
  runner: PathRunner;
  results: StepResult[];
  /** queued-invalidation descriptors processed during set-up (index 0) ... */
  setupQi: QiDesc[];
  /** ... and during each step */
  qi: QiDesc[][];
}

/** Parse, build the legacy path, run every step (`after` sees the model after each one). */
export function run(json: unknown, after?: (step: number, model: DmaApi) => void): Run {
  const scenario = parseScenario(json);
  const model = createPath('legacy-intel', scenario);
  const runner = new PathRunner(model, scenario);
  const hw = model.machine.hw;
  const setupQi = hw.qiLog.slice();
  const results: StepResult[] = [];
  const qi: QiDesc[][] = [];
  scenario.steps.forEach((st, i) => {
    const before = hw.qiLog.length;
    results.push(runner.run(i, st));
    qi.push(hw.qiLog.slice(before));
    after?.(i, model);
  });
  return { scenario, model, runner, results, setupQi, qi };
}

/** Build and run in one go. */
export function runSteps(o: ScenarioOptions, after?: (step: number, model: DmaApi) => void): Run {
  return run(scenarioJson(o), after);
}

// ---------------------------------------------------------------- tables, read from memory

export interface LeafPte {
  /** the raw 64-bit entry */
  value: bigint;
  /** 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB */
  level: number;
}

const ADDR_MASK = 0x000f_ffff_ffff_f000n;

/**
 * The leaf entry translating `iova` for source id `sid`, found by walking the tables in
 * simulated memory as the VT-d spec lays them out (root entry -> context entry -> second-level
 * tables of AW + 2 levels, PS bit 7 ending the walk), independently of the driver's table code.
 * null when a level is not present (bits 1:0 both clear).
 */
export function walkLeaf(model: DmaApi, sid: number, iova: bigint): LeafPte | null {
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

/** The context entry's domain id and address width field for source id `sid`. */
export function contextOf(model: DmaApi, sid: number): { did: number; aw: number } | null {
  const mem = model.machine.memory;
  const root = mem.readU64(model.machine.hw.rootTableAddress + (sid >>> 8) * 16);
  if ((root & 1n) === 0n) return null;
  const ctxAt = Number(root & ADDR_MASK) + (sid & 0xff) * 16;
  const hi = mem.readU64(ctxAt + 8);
  return { did: Number((hi >> 8n) & 0xffffn), aw: Number(hi & 7n) };
}

/** A recorded fixture, read relative to this folder. */
export function loadFixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`../fixtures/oracle/${name}`, import.meta.url), 'utf8')) as unknown;
}

// ---------------------------------------------------------------- kernel log and trace

/** Log lines printed during step i (-1: set-up). */
export function logOf(r: Run, step: number): string[] {
  return r.model.machine.log.lines.filter((l) => l.step === step).map((l) => l.text);
}

export function allLog(r: Run): string[] {
  return r.model.machine.log.lines.map((l) => l.text);
}

/** Trace events of step i as "event: text". */
export function traceOf(r: Run, step: number): string[] {
  return r.model.machine.trace.events.filter((e) => e.step === step).map((e) => `${e.event}: ${e.text}`);
}

// ---------------------------------------------------------------- invalidation descriptors

/** IOTLB invalidation descriptors (type 2) only, as [qw0, qw1]. */
export function iotlbDescs(descs: readonly QiDesc[]): Array<[bigint, bigint]> {
  return descs.filter((d) => (d.qw0 & 0xfn) === 2n).map((d) => [d.qw0, d.qw1]);
}

/**
 * qw0 of qi_flush_iotlb as 5.10's dmar.c builds it: QI_IOTLB_DID(did) | DR (bit 7) | DW (bit 6)
 * | QI_IOTLB_GRAN(type) (PSI 3, DSI 2, global 1, in bits 5:4) | QI_IOTLB_TYPE (2). QEMU has both
 * drain bits (cap 0xd2008c22260206).
 */
export function iotlbQw0(did: number, gran: 'psi' | 'dsi'): bigint {
  const g = gran === 'psi' ? 3n : 2n;
  return (BigInt(did) << 16n) | (1n << 7n) | (1n << 6n) | (g << 4n) | 2n;
}

/** qw1 of a PSI: QI_IOTLB_ADDR(pfn << 12) | QI_IOTLB_AM(am); IH never survives QI_IOTLB_ADDR. */
export function psiQw1(pfn: number, am: number): bigint {
  return (BigInt(pfn) << 12n) | BigInt(am);
}

// ---------------------------------------------------------------- memory pattern

/** The untouched pattern bytes of [addr, addr + len) as the lower-case hex a step's data uses. */
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

/** A step result's dma as a number (throws if the step did not map). */
export function dmaOf(res: StepResult): bigint {
  if (res.dma === undefined) throw new Error(`no dma in ${JSON.stringify(res)}`);
  return BigInt(res.dma);
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
 * check.py's sub(expected, actual): dicts as subsets (every expected key present and equal),
 * lists of equal length compared elementwise, 0x-strings compared as numbers, anything else
 * with ==. Returns null on a match, else where and how it differs.
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

export function setMask(dev: string, bits: number): StepJson {
  return { op: 'set_dma_mask', dev, bits, which: 'both' };
}

export const FQ_TIMEOUT: StepJson = { op: 'flush_queue_timeout' };
