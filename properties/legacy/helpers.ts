/**
 * Helpers for the legacy-intel (Linux 5.10.262 intel_dma_ops / bounce_dma_ops) suites.
 *
 * What all path suites share (scenario JSON, the step runner, step builders, the table walker,
 * the memory pattern, check.py's comparison) lives in ../support/ and is re-exported here; this
 * file keeps the legacy path's runner signature and what only 5.10 shows: its dev_printk prefix
 * and the IOTLB descriptors 5.10's dmar.c builds.
 *
 * Expected values never come from here: the only computation of "what should be" the suites use
 * is the self-describing memory pattern of ../support/pattern.ts.
 */
import type { DmaPath } from '../../platform/dma-api.js';
import { runPath, scenarioJson, type Run, type ScenarioOptions } from '../support/scenario.js';

export * from '../support/path-suite.js';
export { scenarioJson } from '../support/scenario.js';

/** The prefix dev_printk gives the scenario devices' messages ("<driver> <device>: "). */
/** a buffer area clear of every fixed region of the simulated machine */
export const P = 0x1000000;
/** the edu device's source id (00:02.0) */
export const SID = 0x10;

export const DEV_PREFIX = 'dmadiff 0000:00:02.0: ';

/** Parse, build the legacy path, run every step (`after` sees the model after each one). */
export function run(json: unknown, after?: (step: number, model: DmaPath) => void): Run {
  return runPath('legacy-intel', json, { after });
}

/** Build and run in one go. */
export function runSteps(o: ScenarioOptions, after?: (step: number, model: DmaPath) => void): Run {
  return run(scenarioJson(o), after);
}

// ---------------------------------------------------------------- invalidation descriptors

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
