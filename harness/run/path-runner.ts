/**
 * Runs scenario steps on one DMA path and records what a driver and a device observe, in the
 * result format of DESIGN.md. Device accesses are expressed relative to a mapping and translated
 * with this path's own returned addresses.
 */
import { DMA_MAPPING_ERROR, DmaDirection, dmaBitMask, type Device } from '../../kernel/device.js';
import type { CoherentAlloc, DmaPath } from '../../kernel/dma-api.js';
import { sgFromBuffers, type SgTable } from '../../kernel/scatterlist.js';
import type { DmaFault } from '../../vtd/hardware.js';
import { reasonHex } from '../../vtd/fault.js';
import { consumerAccesses, type DeviceAccessPiece } from '../workload/consumers.js';
import { hex, type Dir, type Scenario, type Step } from '../workload/scenario.js';
import { ScenarioError } from '../workload/validation.js';
import { EIO, errnoName } from '../../kernel/bits.js';

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

export function toDirection(d: Dir): DmaDirection {
  return d === 'to_device' ? DmaDirection.ToDevice : d === 'from_device' ? DmaDirection.FromDevice : DmaDirection.Bidirectional;
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

  private mapping(name: string): Mapping {
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

  run(i: number, step: Step): StepResult {
    const failuresBefore = this.model.machine.stats.iovaAllocFailures;
    const r = this.runStep(i, step);
    if ('as' in step && !r.ok && this.model.machine.stats.iovaAllocFailures > failuresBefore) this.mappings.get(step.as)!.iovaFailed = true;
    return r;
  }

  private runStep(i: number, step: Step): StepResult {
    const model = this.model;
    const cpu = 'cpu' in step ? step.cpu : 0;
    model.machine.enterStep(i, cpu);
    switch (step.op) {
      case 'map_page': {
        const dev = model.device(step.dev);
        const dir = toDirection(step.dir);
        const dma = model.mapPage(dev, step.phys, step.size, dir, cpu);
        const ok = dma !== DMA_MAPPING_ERROR;
        this.mappings.set(step.as, { name: step.as, kind: 'single', dev, dir, ok, live: ok, dma, size: step.size, phys: step.phys, count: 0 });
        return ok ? { ok, dma: hex(dma) } : { ok };
      }
      case 'map_sg': {
        const dev = model.device(step.dev);
        const dir = toDirection(step.dir);
        const sgt = sgFromBuffers(step.sg);
        const count = model.mapSg(dev, sgt, dir, cpu);
        const ok = count > 0;
        this.mappings.set(step.as, {
          name: step.as,
          kind: 'sg',
          dev,
          dir,
          ok,
          live: ok,
          dma: 0n,
          size: step.sg.reduce((a, e) => a + e.length, 0),
          phys: 0,
          sgt,
          count,
          entries: step.sg,
          segBoundaryMask: dev.segBoundaryMask,
          maxSegSize: dev.maxSegSize,
        });
        if (!ok) return { ok };
        return { ok, count, segments: sgt.sgl.slice(0, count).map((s) => ({ dma: hex(s.dmaAddress), len: s.dmaLength })) };
      }
      case 'alloc_coherent': {
        this.coherentGeneration++;
        const dev = model.device(step.dev);
        const buf = model.allocCoherent(dev, step.size, cpu);
        const ok = buf !== null;
        const dma = buf?.handle ?? DMA_MAPPING_ERROR;
        const m: Mapping = { name: step.as, kind: 'coherent', dev, dir: DmaDirection.Bidirectional, ok, live: ok, dma, size: step.size, phys: 0, count: 0 };
        if (buf !== null) m.coherent = buf;
        this.mappings.set(step.as, m);
        return ok ? { ok, dma: hex(dma) } : { ok };
      }
      case 'unmap':
      case 'free_coherent': {
        const m = this.mapping(step.map);
        if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
        if (!m.live) return { ok: false, error: `${m.name} is already unmapped` };
        m.live = false;
        if (m.kind === 'coherent') this.coherentGeneration++;
        if (m.kind === 'single') model.unmapPage(m.dev, m.dma, m.size, m.dir, cpu);
        else if (m.kind === 'sg') model.unmapSg(m.dev, m.sgt!, m.dir, cpu);
        else model.freeCoherent(m.dev, m.coherent!, cpu);
        return { ok: true };
      }
      case 'sync_for_cpu':
      case 'sync_for_device': {
        const m = this.mapping(step.map);
        if (!m.live) return { ok: false, error: `${m.name} is not mapped` };
        const forCpu = step.op === 'sync_for_cpu';
        if (m.kind === 'single') model.syncSingle(m.dev, m.dma, m.size, m.dir, forCpu);
        else model.syncSg(m.dev, m.sgt!, m.dir, forCpu);
        return { ok: true };
      }
      case 'dma_read':
      case 'dma_write': {
        const m = this.mapping(step.map);
        if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
        const pieces = this.pieces(m, step.offset, step.len);
        // a device address is 64 bits: an access that leaves them is not a probe but a bad step
        for (const p of pieces) {
          if (p.iova < 0n || p.iova + BigInt(p.len) > 1n << 64n) {
            throw new ScenarioError(`steps[${i}].offset: ${step.offset} from ${m.name} gives the device address ${p.iova < 0n ? `-${hex(-p.iova)}` : hex(p.iova)} (+${p.len}), outside 64 bits`);
          }
        }
        return step.op === 'dma_read' ? this.deviceRead(m.dev, pieces) : this.deviceWrite(m.dev, pieces, step.fill);
      }
      case 'cpu_read':
        return { ok: true, data: Buffer.from(model.machine.memory.read(step.phys, step.len)).toString('hex') };
      case 'cpu_write':
        model.machine.memory.fill(step.phys, step.len, step.fill);
        return { ok: true };
      case 'consumer_walk': {
        const m = this.mapping(step.map);
        if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
        return this.deviceRead(m.dev, consumerAccesses(step.consumer, m.sgt!.sgl, m.count));
      }
      case 'flush_queue_timeout':
        model.machine.passFlushQueueTimeout();
        return { ok: true };
      case 'set_dma_mask': {
        const dev = model.device(step.dev);
        const mask = dmaBitMask(step.bits);
        // dma_set_mask_and_coherent: the coherent mask only if the streaming one was accepted
        let ok = true;
        if (step.which !== 'coherent') ok = model.setDmaMask(dev, mask);
        if (ok && step.which !== 'streaming') ok = model.setCoherentMask(dev, mask);
        return ok ? { ok } : { ok, error: errnoName(-EIO) };
      }
      case 'set_max_seg_size':
        model.device(step.dev).maxSegSize = step.size;
        return { ok: true };
      case 'set_seg_boundary':
        model.device(step.dev).segBoundaryMask = step.mask;
        return { ok: true };
    }
  }
}
