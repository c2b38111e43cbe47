/**
 * Helpers for the generic-path suites (Linux 6.1.192's iommu_dma_ops over the converted VT-d
 * iommu_ops, `createPath('dma-iommu', ...)`).
 *
 * What all path suites share (scenario JSON, the step runner, step builders, the table walker,
 * the memory pattern, check.py's comparison) lives in ../support/ and is re-exported here; this
 * file keeps the generic path's runner signature (with seeded bugs), its default reserved range,
 * and the trace formats only 6.1 prints: the qi_submit text of drivers/iommu/intel/trace.h and
 * the iommu:map/unmap formats of include/trace/events/iommu.h, written out here independently of
 * kernel/trace.ts.
 *
 * Nothing here computes what the model should answer.
 */
import type { SeededBugs } from '../../harness/run/paths.js';
import type { PathRunner } from '../../harness/run/path-runner.js';
import type { DmaPath } from '../../platform/dma-api.js';
import { IOAPIC_RESERVED, runPath, scenarioJson as baseScenarioJson, type Run, type ScenarioOptions } from '../support/scenario.js';

export * from '../support/path-suite.js';

/** A dmadiff-scenario/1 document: the shared defaults, and the IOAPIC window reserved unless `reserved` is given. */
export function scenarioJson(o: ScenarioOptions): Record<string, unknown> {
  return baseScenarioJson({ ...o, reserved: o.reserved ?? [IOAPIC_RESERVED] });
}

/** Parse, build the generic path (with optional seeded bugs), run every step. */
export function run(json: unknown, faults: SeededBugs = {}, after?: (step: number, model: DmaPath, runner: PathRunner) => void): Run {
  return runPath('dma-iommu', json, { faults, after });
}

/** Build the JSON and run it in one go. */
export function runSteps(o: ScenarioOptions, faults: SeededBugs = {}, after?: (step: number, model: DmaPath, runner: PathRunner) => void): Run {
  return run(scenarioJson(o), faults, after);
}

/** the recordings' buffer pool: clear of every fixed region of the simulated machine */
export const P = 0x3400000;
export const PAGE = 4096;
/** the edu device's source id (00:02.0) */
export const SID = 0x10;

// ---------------------------------------------------------------- 6.1 trace formats

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

/** The IOVA ranges still allocated in the run's domains (the end state's leak report). */
export function liveIovas(r: Run): Array<{ pfnLo: number; pfnHi: number }> {
  return r.model.leaks().liveIovas;
}

/** The entries of a mapped scatterlist, CPU and DMA fields, as the run left them. */
export function sgOf(r: Run, name: string): Array<{ dmaAddress: bigint; dmaLength: number; pagePfn: number; offset: number; length: number }> {
  const m = r.runner.mappings.get(name);
  if (m?.sgt === undefined) throw new Error(`no sg mapping ${name}`);
  return m.sgt.sgl.map((s) => ({ dmaAddress: s.dmaAddress, dmaLength: s.dmaLength, pagePfn: s.pagePfn, offset: s.offset, length: s.length }));
}

/** Expected DMA segments: [dma address, length] pairs. */
export function segs(...s: Array<[string, number]>): Array<{ dma: string; len: number }> {
  return s.map(([dma, len]) => ({ dma, len }));
}
