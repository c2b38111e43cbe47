/**
 * The valid scenarios the bad-input suites break (bad-input*.test.ts): a hand-written one using
 * every op, and the two recordings; the format's required fields by op; and the check that a
 * scenario file fails as the CLI must fail on bad input (exit 2, one line naming the place).
 */
import { expect } from 'vitest';
import { DEV, cli, loadFixture, scenarioJson } from './helpers.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

/** Every op of DESIGN.md's table, two devices, two CPUs, a reserved range. */
export const HAND = scenarioJson({
  platform: { agaw: 48, strict: false, cpus: 2, superpages: ['2M'] },
  devices: [
    { ...DEV, coherentMask: 32, maxSegSize: 65536, segBoundaryMask: '0xffffffff' },
    { id: 'tb', bdf: '00:03.0', pci: true, untrusted: true, dmaMask: 39 },
  ],
  steps: [
    { op: 'map_page', dev: 'dev', phys: '0x1000100', size: 1500, dir: 'to_device', cpu: 0, as: 'm1' },
    { op: 'map_sg', dev: 'tb', dir: 'from_device', as: 's1', sg: [{ phys: '0x2000000', length: 4096 }, { phys: '0x3000000', length: 4096 }] },
    { op: 'dma_read', map: 'm1', offset: -64, len: 128 },
    { op: 'alloc_coherent', dev: 'dev', size: 8192, cpu: 1, as: 'c1' },
    { op: 'dma_write', map: 's1', offset: 4000, len: 200, fill: 171 },
    { op: 'sync_for_cpu', map: 's1' },
    { op: 'sync_for_device', map: 's1' },
    { op: 'cpu_read', phys: '0x2000f90', len: 112 },
    { op: 'cpu_write', phys: '0x2000000', len: 16, fill: 7 },
    { op: 'consumer_walk', map: 's1', consumer: 'i915' },
    { op: 'unmap', map: 'm1', cpu: 1 },
    { op: 'free_coherent', map: 'c1' },
    { op: 'flush_queue_timeout' },
    { op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' },
    { op: 'set_max_seg_size', dev: 'dev', size: 4096 },
    { op: 'set_seg_boundary', dev: 'dev', mask: '0x3fff' },
    { op: 'unmap', map: 's1' },
  ],
}) as Obj;

export const BASES: ReadonlyArray<{ name: string; json: Obj }> = [
  { name: 'hand-written', json: HAND },
  { name: 'strict-main', json: loadFixture('strict-main').scenario as Obj },
  { name: 'strict-dmacheck', json: loadFixture('strict-dmacheck').scenario as Obj },
];

// ---------------------------------------------------------------- the rules of the format

/** the fields each op must have (DESIGN.md's op table) */
export const REQUIRED: Record<string, readonly string[]> = {
  map_page: ['dev', 'phys', 'size', 'dir', 'as'],
  map_sg: ['dev', 'dir', 'sg', 'as'],
  unmap: ['map'],
  alloc_coherent: ['dev', 'size', 'as'],
  free_coherent: ['map'],
  sync_for_cpu: ['map'],
  sync_for_device: ['map'],
  dma_read: ['map', 'offset', 'len'],
  dma_write: ['map', 'offset', 'len', 'fill'],
  cpu_read: ['phys', 'len'],
  cpu_write: ['phys', 'len', 'fill'],
  consumer_walk: ['map', 'consumer'],
  flush_queue_timeout: [],
  set_dma_mask: ['dev', 'bits'],
  set_max_seg_size: ['dev', 'size'],
  set_seg_boundary: ['dev', 'mask'],
};
export const OPS = Object.keys(REQUIRED);

export function steps(j: Obj): Obj[] {
  return j['steps'] as Obj[];
}

export function devices(j: Obj): Obj[] {
  return j['devices'] as Obj[];
}

/** `dmadiff scenario FILE` fails as bad input must: exit 2, nothing on stdout, one line naming `path`; the line. */
export async function expectOneLine(file: string, path: string): Promise<string> {
  const r = await cli(['scenario', file]);
  expect(r.code).toBe(2);
  expect(r.out.filter((l) => l !== '')).toEqual([]);
  expect(r.err).toHaveLength(1);
  expect(r.err[0]!.startsWith(`dmadiff: ${path}: `), `"${r.err[0]}" should start with "dmadiff: ${path}: "`).toBe(true);
  return r.err[0]!;
}
