/** Builders for the steps of a dmadiff-scenario/1 document, as plain JSON. */
import { hx } from './pattern.js';
import type { StepJson } from './scenario.js';

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
