/**
 * The two DMA paths the harness compares, built from a scenario: each on its own machine with
 * the same platform, its own device structures, and the scenario's reserved IOVA ranges.
 */
import type { DmaPath } from '../../platform/dma-api.js';
import { DmaIommu, type GenericFaults } from '../../dma-iommu/dma-iommu-path.js';
import type { LegacyFaults } from '../../legacy-intel/dma-ops.js';
import { LegacyIntel } from '../../legacy-intel/intel-iommu.js';
import { makeDevice } from './devices.js';
import type { Scenario } from '../workload/scenario.js';
import { iovaPfn } from '../../kernel/bits.js';

export type PathName = 'legacy-intel' | 'dma-iommu';

/** Seeded bugs, for proving the harness can fail: switches in either model, all off by default. */
export type SeededBugs = GenericFaults & LegacyFaults;
export type SeededBug = keyof SeededBugs;

/** Every seeded bug, in the order tokens, scenarios and help text list them. */
export const SEEDED_BUGS: readonly SeededBug[] = [
  'noIotlbSync',
  'noIotlbSyncMap',
  'noBouncePaddingZero',
  'mergeIgnoresMaxSeg',
  'lazyUntrusted',
  'syncSgWholeList',
  'unmapCopyBackFromDeviceOnly',
  'unmapCopyBackAligned',
  'legacySyncSgForCpuToDevice',
  'noMapTraceAtomic',
  'bounceTracesOriginal',
  'retryFromCachedNode',
  'roundAllToPowerOfTwo',
  'noDepotFlushOnFailure',
  'syncForDeviceWholeSlot',
];

/** The switches a list of seeded bugs stands for. */
export function bugSwitches(bugs: readonly SeededBug[]): SeededBugs {
  const f: SeededBugs = {};
  for (const b of bugs) f[b] = true;
  return f;
}

/** The seeded bugs a set of switches turns on, in SEEDED_BUGS order. */
export function bugList(f: SeededBugs): SeededBug[] {
  return SEEDED_BUGS.filter((b) => f[b] === true);
}

/** The reserved ranges as inclusive pfn ranges (reserve_iova's arguments). */
export function reservedPfns(s: Scenario): Array<{ lo: number; hi: number }> {
  return s.reserved.map((r) => ({ lo: iovaPfn(r.start), hi: iovaPfn(r.end) }));
}

/** Build a path; `faults` switches on seeded bugs (tests of the checker): each model reads only its own switches. */
export function createPath(name: PathName, s: Scenario, faults: SeededBugs = {}): DmaPath {
  const devices = s.devices.map(makeDevice);
  const ids = s.devices.map((d) => d.id);
  switch (name) {
    case 'legacy-intel':
      return new LegacyIntel({ ...s.platform, superpages: [...s.platform.superpages] }, devices, ids, reservedPfns(s), faults);
    case 'dma-iommu':
      return new DmaIommu({ ...s.platform, superpages: [...s.platform.superpages] }, devices, ids, reservedPfns(s), faults);
  }
}
