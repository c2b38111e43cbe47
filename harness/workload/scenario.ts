/**
 * The scenario format, dmadiff-scenario/1 (DESIGN.md "Scenario format"): platform, devices,
 * reserved IOVA ranges and steps, JSON, 64-bit quantities as hex strings. This module holds the
 * types of a parsed scenario; validation.ts turns JSON into one (or one line of error).
 */
import type { PlatformConfig } from '../../platform/machine.js';
import type { SeededBug } from '../run/paths.js';

export const SCENARIO_FORMAT = 'dmadiff-scenario/1';

export type Dir = 'to_device' | 'from_device' | 'bidirectional';
/** The consumer models (consumers.ts), in the order every list and message shows them. */
export const CONSUMERS = ['correct', 'i915', 'i915-fixed'] as const;
export type Consumer = (typeof CONSUMERS)[number];
export type MaskWhich = 'both' | 'streaming' | 'coherent';

/** The platform block: the machine configuration both paths run on. */
export type Platform = PlatformConfig;

export interface ScenarioDevice {
  id: string;
  bdf: string;
  pci: boolean;
  untrusted: boolean;
  dmaMask: number;
  coherentMask: number;
  maxSegSize: number;
  segBoundaryMask: bigint;
}

export interface Reserved {
  start: bigint;
  end: bigint;
}

/**
 * What a real kernel's trace says a map call returned (dmadiff import-trace): the model of that
 * release must return the same, or the step shows a `fidelity` divergence. 5.10 prints every sg
 * entry's DMA address and length; 6.1 only where the call's IOVA range begins.
 */
export interface TracedResult {
  release: '5.10' | '6.1';
  /** map_page: the handle; map_sg: the first segment's DMA address (hex) */
  dma: string;
  /** map_sg on 5.10: every segment, as the map_sg events print them */
  segments?: Array<{ dma: string; len: number }>;
}

/** Where an imported scenario came from: the trace, the assumptions made, the real addresses. */
export interface ImportedFrom {
  source: string;
  release: '5.10' | '6.1';
  /** the import's one-line summary of what the trace did not say and what was assumed */
  assumptions: string;
  /** real physical runs and where they are in the scenario (hex addresses) */
  phys: Array<{ real: string; model: string; pages: number }>;
}

export type Step =
  | { op: 'map_page'; dev: string; phys: number; size: number; dir: Dir; cpu: number; as: string; traced?: TracedResult }
  | { op: 'map_sg'; dev: string; dir: Dir; sg: Array<{ phys: number; length: number }>; cpu: number; as: string; traced?: TracedResult }
  | { op: 'unmap'; map: string; cpu: number }
  | { op: 'alloc_coherent'; dev: string; size: number; cpu: number; as: string }
  | { op: 'free_coherent'; map: string; cpu: number }
  | { op: 'sync_for_cpu'; map: string }
  | { op: 'sync_for_device'; map: string }
  | { op: 'dma_read'; map: string; offset: number; len: number }
  | { op: 'dma_write'; map: string; offset: number; len: number; fill: number }
  | { op: 'cpu_read'; phys: number; len: number }
  | { op: 'cpu_write'; phys: number; len: number; fill: number }
  | { op: 'consumer_walk'; map: string; consumer: Consumer }
  | { op: 'flush_queue_timeout' }
  | { op: 'set_dma_mask'; dev: string; bits: number; which: MaskWhich }
  | { op: 'set_max_seg_size'; dev: string; size: number }
  | { op: 'set_seg_boundary'; dev: string; mask: bigint };

export type Op = Step['op'];

/** Each op's own step type, by op name (an op's description in ops/ is typed by it). */
export type StepMap = { [S in Step as S['op']]: S };
export type StepOf<O extends Op> = StepMap[O];

/** What a mapping is, as steps make and name them. */
export type MapKind = 'single' | 'sg' | 'coherent';

export interface Scenario {
  format: typeof SCENARIO_FORMAT;
  platform: Platform;
  devices: ScenarioDevice[];
  reserved: Reserved[];
  steps: Step[];
  /**
   * Seeded bugs both models run with (optional, compatible with files that lack it): a failure
   * found by `gate --broken BUG` keeps its bug, so its scenario file reproduces it.
   */
  seededBugs?: SeededBug[];
  /** set by dmadiff import-trace (optional, compatible with files that lack it) */
  imported?: ImportedFrom;
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** The JSON form of a scenario (the inverse of parsing), with stable key order. */
export function scenarioToJson(s: Scenario): unknown {
  return {
    format: s.format,
    platform: { ...s.platform, superpages: [...s.platform.superpages] },
    devices: s.devices.map((d) => ({ ...d, segBoundaryMask: hex(d.segBoundaryMask) })),
    reserved: s.reserved.map((r) => ({ start: hex(r.start), end: hex(r.end) })),
    steps: s.steps.map((st) => {
      const o: Record<string, unknown> = { ...st };
      if ('phys' in st) o['phys'] = hex(st.phys);
      if (st.op === 'map_sg') o['sg'] = st.sg.map((e) => ({ phys: hex(e.phys), length: e.length }));
      if (st.op === 'set_seg_boundary') o['mask'] = hex(st.mask);
      return o;
    }),
    ...(s.seededBugs !== undefined && s.seededBugs.length > 0 ? { seededBugs: [...s.seededBugs] } : {}),
    ...(s.imported !== undefined ? { imported: s.imported } : {}),
  };
}
