/**
 * Runs scenario steps on one DMA path and records what a driver and a device observe, in the
 * result format of DESIGN.md. Device accesses are expressed relative to a mapping and translated
 * with this path's own returned addresses.
 */
import type { DmaDirection, Device } from '../../kernel/device.js';
import type { CoherentAlloc, DmaPath } from '../../platform/dma-api.js';
import type { SgTable } from '../../kernel/scatterlist.js';
import type { DmaFault } from '../../vtd/dma.js';
import { reasonHex } from '../../vtd/fault.js';
import { must } from '../../kernel/assert.js';
import type { DeviceAccessPiece } from '../workload/consumers.js';
import { runOp } from '../workload/ops/registry.js';
import { hex, type Scenario, type Step } from '../workload/scenario.js';

export interface FaultJson {
  reason: string;
  type: 'read' | 'write';
  addr: string;
}

export interface StepResult {
  ok: boolean;
  dma?: string;
  count?: number;
  segments?: Array<{ dma: string; len: number }>;
  data?: string;
  fault?: FaultJson;
  error?: string;
}

/** A mapping as the scenario names it, with this path's answers. */
export interface Mapping {
  name: string;
  kind: 'single' | 'sg' | 'coherent';
  dev: Device;
  dir: DmaDirection;
  ok: boolean;
  live: boolean;
  /** single and coherent: the handle and size */
  dma: bigint;
  size: number;
  phys: number;
  /** sg: the list as the path left it, and its count */
  sgt?: SgTable;
  count: number;
  coherent?: CoherentAlloc;
  /** sg: the caller's entries, and the device limits in force when it was mapped */
  entries?: Array<{ phys: number; length: number }>;
  segBoundaryMask?: bigint;
  maxSegSize?: number;
  /** the map failed because no IOVA range could be allocated */
  iovaFailed?: boolean;
  /** ... and the exhaustion check found no free range it should have used (exhaustion.ts) */
  noFreeRange?: boolean;
}

function faultJson(f: DmaFault): FaultJson {
  return { reason: reasonHex(f.reason), type: f.isRead ? 'read' : 'write', addr: hex(f.addr) };
}

export class PathRunner {
  readonly mappings = new Map<string, Mapping>();
  /** bumped by every alloc_coherent and free_coherent: which buffer a coherent page belongs to may have moved */
  coherentGeneration = 0;

  constructor(
    readonly model: DmaPath,
    readonly scenario: Scenario,
  ) {}

  /** The mapping a step names (validation saw to it that an earlier step made it). */
  mapping(name: string): Mapping {
    return this.mappings.get(name)!;
  }

  /**
   * The device-side pieces of an access at [offset, offset + len) of a mapping. For a list the
   * offset is into the byte stream of its first `count` segments; before 0 it is relative to
   * the first segment, past the end relative to the end of the last.
   */
  pieces(m: Mapping, offset: number, len: number): DeviceAccessPiece[] {
    if (m.kind !== 'sg') return [{ iova: m.dma + BigInt(offset), len }];
    const segs = m.sgt!.sgl.slice(0, m.count);
    const out: DeviceAccessPiece[] = [];
    let pos = offset;
    const end = offset + len;
    if (pos < 0) {
      const n = Math.min(end, 0) - pos;
      out.push({ iova: segs[0]!.dmaAddress + BigInt(pos), len: n });
      pos += n;
    }
    let base = 0;
    for (const s of segs) {
      if (pos >= end) break;
      const segEnd = base + s.dmaLength;
      if (pos < segEnd) {
        const n = Math.min(end, segEnd) - pos;
        out.push({ iova: s.dmaAddress + BigInt(pos - base), len: n });
        pos += n;
      }
      base = segEnd;
    }
    if (pos < end) {
      const last = segs[segs.length - 1]!;
      out.push({ iova: last.dmaAddress + BigInt(last.dmaLength) + BigInt(pos - base), len: end - pos });
    }
    return out;
  }

  /** The device reads the pieces in order, stopping at the first fault. */
  deviceRead(dev: Device, pieces: readonly DeviceAccessPiece[]): StepResult {
    const chunks: Uint8Array[] = [];
    for (const p of pieces) {
      const r = this.model.machine.deviceRead(dev.sid, p.iova, p.len);
      if (r.fault !== undefined) return { ok: false, fault: faultJson(r.fault) };
      chunks.push(r.data);
    }
    // one hex string made at once: a string built piece by piece is a rope, and comparing two
    // ropes goes character by character
    const one = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    return { ok: true, data: Buffer.from(one.buffer, one.byteOffset, one.byteLength).toString('hex') };
  }

  deviceWrite(dev: Device, pieces: readonly DeviceAccessPiece[], fill: number): StepResult {
    for (const p of pieces) {
      const r = this.model.machine.deviceWrite(dev.sid, p.iova, new Uint8Array(p.len).fill(fill));
      if (r.fault !== undefined) return { ok: false, fault: faultJson(r.fault) };
    }
    return { ok: true };
  }

  /** Step i run on this path (its op's description says how: workload/ops/). */
  run(i: number, step: Step): StepResult {
    const stats = this.model.machine.stats;
    const failuresBefore = stats.iovaAllocFailures;
    this.model.machine.enterStep(i, 'cpu' in step ? step.cpu : 0);
    const r = runOp(step.op, this, step, i);
    if ('as' in step && !r.ok && stats.iovaAllocFailures > failuresBefore) must(this.mappings.get(step.as), 'the mapping the step made').iovaFailed = true;
    return r;
  }
}
