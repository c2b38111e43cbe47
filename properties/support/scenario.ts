/**
 * Scenarios for the path suites: dmadiff-scenario/1 JSON is built as plain data, parsed with the
 * harness's validator and run step by step on one path ('legacy-intel' or 'dma-iommu', the
 * latter optionally with seeded bugs). Everything a test wants to look at afterwards is kept: the
 * step results, the queued-invalidation descriptors each step made the hardware process, the
 * kernel log and the trace.
 *
 * Nothing here computes what the model should answer.
 */
import type { SeededBugs } from '../../harness/run/paths.js';
import { PathRunner, type StepResult } from '../../harness/run/path-runner.js';
import { createPath, type PathName } from '../../harness/run/paths.js';
import type { Scenario } from '../../harness/workload/scenario.js';
import { parseScenario } from '../../harness/workload/validation.js';
import type { DmaPath } from '../../platform/dma-api.js';
import type { QiDesc } from '../../vtd/qi-desc.js';

// ---------------------------------------------------------------- scenario JSON

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

export interface ReservedJson {
  start: string;
  end: string;
}

/** The recordings' device: edu, a conventional PCI function at 00:02.0, here with a 64-bit mask. */
export const EDU: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 64 };

/**
 * The domain id of a lone scenario device at 00:02.0: ids 0 and 1 are reserved
 * (iommu_init_domains), q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3.
 */
export const EDU_DID = 4;

/** The IOAPIC window every x86 DMA domain reserves (intel_iommu_get_resv_regions). */
export const IOAPIC_RESERVED: ReservedJson = { start: '0xfee00000', end: '0xfeefffff' };

/** What a scenario is built from; `platform` is typed PlatformJson unless a suite needs it looser. */
export interface ScenarioOptions<P extends object = PlatformJson> {
  platform?: P;
  devices?: DeviceJson[];
  reserved?: ReservedJson[];
  steps: StepJson[];
}

/**
 * A dmadiff-scenario/1 document: the recordings' platform (aw 39, strict, no CM) unless
 * overridden, the edu device unless others are given, no reserved ranges unless given.
 */
export function scenarioJson<P extends object = PlatformJson>(o: ScenarioOptions<P>): Record<string, unknown> {
  return {
    format: 'dmadiff-scenario/1',
    platform: { agaw: 39, cachingMode: false, zlr: false, superpages: ['2M', '1G'], strict: true, forcedac: false, cpus: 1, ...o.platform },
    devices: o.devices ?? [EDU],
    reserved: o.reserved ?? [],
    steps: o.steps,
  };
}

// ---------------------------------------------------------------- running a path

export interface Run {
  scenario: Scenario;
  model: DmaPath;
  runner: PathRunner;
  results: StepResult[];
  /** queued-invalidation descriptors processed during set-up ... */
  setupQi: QiDesc[];
  /** ... and during each step */
  qi: QiDesc[][];
}

/** Called after each step with the model (and its runner) as that step left them. */
export type AfterStep = (step: number, model: DmaPath, runner: PathRunner) => void;

export interface RunOptions {
  /** seeded bugs, for the generic path only */
  faults?: SeededBugs;
  after?: AfterStep;
}

/** Parse a scenario, build the named path (with any seeded bugs), run every step. */
export function runPath(path: PathName, json: unknown, o: RunOptions = {}): Run {
  const scenario = parseScenario(json);
  const model = createPath(path, scenario, o.faults ?? {});
  const runner = new PathRunner(model, scenario);
  const hw = model.machine.hw;
  const setupQi = hw.qiLog.slice();
  const results: StepResult[] = [];
  const qi: QiDesc[][] = [];
  scenario.steps.forEach((st, i) => {
    const before = hw.qiLog.length;
    results.push(runner.run(i, st));
    qi.push(hw.qiLog.slice(before));
    o.after?.(i, model, runner);
  });
  return { scenario, model, runner, results, setupQi, qi };
}

// ---------------------------------------------------------------- what a run recorded

/** A step result's dma as a bigint (throws if the step did not map). */
export function dmaOf(res: StepResult | undefined): bigint {
  if (res?.dma === undefined) throw new Error(`no dma in ${JSON.stringify(res)}`);
  return BigInt(res.dma);
}

/** Kernel log lines printed during step i (-1: set-up). */
export function logOf(r: Run, step: number): string[] {
  return r.model.machine.log.lines.filter((l) => l.step === step).map((l) => l.text);
}

/** The whole kernel log. */
export function allLog(r: Run): string[] {
  return r.model.machine.log.lines.map((l) => l.text);
}

/** Trace events of step i as "event: text", in emission order. */
export function traceOf(r: Run, step: number): string[] {
  return r.model.machine.trace.events.filter((e) => e.step === step).map((e) => `${e.event}: ${e.text}`);
}

/** IOTLB invalidation descriptors (type 2) only, as [qw0, qw1]. */
export function iotlbDescs(descs: readonly QiDesc[]): Array<[bigint, bigint]> {
  return descs.filter((d) => (d.qw0 & 0xfn) === 2n).map((d) => [d.qw0, d.qw1]);
}
