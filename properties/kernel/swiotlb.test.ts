/**
 * kernel/swiotlb.ts for both releases (kernel-semantics 4, 9.8 for 6.1.192, 10.10 for 5.10.262;
 * checked against kernel/dma/swiotlb.c of both trees):
 *  - 2 KiB slots, 128-slot segments, a 64 MiB pool at 0x7beb3000 (32768 slots); 6.1 splits it into
 *    roundup_pow_of_two(CPUs) areas and starts the search in area (cpu & (nareas - 1));
 *  - allocations of a page or more use a 2-slot stride, so they are 4 KiB aligned relative to the
 *    pool start (first 0x7beb3000, next 0x7beb4000: the 9.8 oracle note);
 *  - map copies mapping_size bytes in for EVERY direction and attribute (CVE-2022-0854 end state);
 *    unmap copies back only for FROM_DEVICE/BIDIRECTIONAL without DMA_ATTR_SKIP_CPU_SYNC;
 *    sync_for_cpu copies back for FROM_DEVICE/BIDIRECTIONAL, sync_for_device in for
 *    TO_DEVICE/BIDIRECTIONAL;
 *  - exhaustion returns the error value with "swiotlb buffer is full (sz: N bytes), total 32768
 *    (slots), used M (slots)" (ratelimited, silenced by DMA_ATTR_NO_WARN) and never throws;
 *  - the device's segment boundary is never crossed; min_align_mask keeps the low offset bits.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimClock } from '../../kernel/clock.js';
import { DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DmaDirection, type Device } from '../../kernel/device.js';
import { KernelLog } from '../../kernel/log.js';
import { RELEASES, type Release } from '../../kernel/release.js';
import { SWIOTLB_MAP_ERROR, Swiotlb } from '../../kernel/swiotlb.js';
import { PhysMemory } from '../../vtd/memory.js';

const POOL = 0x7beb3000;
const SLOT = 2048;
const PAGE = 4096;

function device(over: Partial<Device> = {}): Device {
  return {
    name: '0000:00:02.0',
    driver: 'edu',
    sid: 0x10,
    pci: true,
    untrusted: true,
    dmaMask: 0xffff_ffff_ffff_ffffn,
    coherentDmaMask: 0xffff_ffff_ffff_ffffn,
    maxSegSize: 65536,
    segBoundaryMask: 0xffff_ffffn,
    minAlignMask: 0,
    busDmaLimit: 0n,
    ...over,
  };
}

interface Rig {
  mem: PhysMemory;
  log: KernelLog;
  clock: SimClock;
  tlb: Swiotlb;
}

function rig(release: Release, ncpus = 1): Rig {
  const clock = new SimClock();
  const mem = new PhysMemory();
  const log = new KernelLog(clock);
  return { mem, log, clock, tlb: new Swiotlb(release, mem, log, ncpus) };
}

/** Deterministic non-pattern bytes (so a copy is told apart from untouched memory). */
function bytesOf(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The design's pattern of unwritten memory: every LE 64-bit word at p reads 0xA5 << 56 | p. */
function pattern(addr: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    const a = addr + i;
    const word = a - (a % 8);
    const k = a % 8;
    const v = (0xa5n << 56n) | BigInt(word);
    out[i] = Number((v >> BigInt(8 * k)) & 0xffn);
  }
  return out;
}

const DIRS: Array<[string, DmaDirection]> = [
  ['TO_DEVICE', DmaDirection.ToDevice],
  ['FROM_DEVICE', DmaDirection.FromDevice],
  ['BIDIRECTIONAL', DmaDirection.Bidirectional],
];
const ATTRS: Array<[string, number]> = [
  ['no attrs', 0],
  ['SKIP_CPU_SYNC', DMA_ATTR_SKIP_CPU_SYNC],
];

describe.each(RELEASES)('swiotlb %s', (release) => {
  it('pool: 64 MiB at 0x7beb3000, 32768 slots; areas as the release has them', () => {
    const { tlb } = rig(release, 1);
    expect(tlb.start).toBe(0x7beb3000);
    expect(tlb.end).toBe(0x7feb3000);
    expect(tlb.nslabs).toBe(32768);
    expect(tlb.nareas).toBe(1);
    expect(tlb.isSwiotlbBuffer(0x7beb3000)).toBe(true);
    expect(tlb.isSwiotlbBuffer(0x7feb2fff)).toBe(true);
    expect(tlb.isSwiotlbBuffer(0x7feb3000)).toBe(false);
    expect(tlb.isSwiotlbBuffer(0x7beb2fff)).toBe(false);
    // 6.1: roundup_pow_of_two(possible CPUs) areas; 5.10 has one pool-wide index
    expect(rig(release, 4).tlb.nareas).toBe(release === '6.1' ? 4 : 1);
    expect(rig(release, 3).tlb.nareas).toBe(release === '6.1' ? 4 : 1);
    expect(tlb.maxMappingSize(device())).toBe(256 * 1024);
    expect(tlb.maxMappingSize(device({ minAlignMask: 0xfff }))).toBe(256 * 1024 - 4096);
  });

  it('page-sized allocations are 4 KiB aligned relative to the pool start: 0x7beb3000, then 0x7beb4000', () => {
    const { tlb } = rig(release);
    const dev = device();
    expect(tlb.mapSingle(dev, 0, 0x3400000, 4096, 4096, 0, 0)).toBe(0x7beb3000);
    expect(tlb.mapSingle(dev, 0, 0x3401000, 4096, 4096, 0, 0)).toBe(0x7beb4000);
    // a 1-slot mapping takes the next slot (stride 1), and the following page-sized one skips the
    // odd slot to stay 4 KiB aligned
    expect(tlb.mapSingle(dev, 0, 0x3402000, 512, 512, 0, 0)).toBe(0x7beb5000);
    expect(tlb.mapSingle(dev, 0, 0x3403000, 100, 4096, 0, 0)).toBe(0x7beb6000);
    expect(tlb.usedSlots).toBe(2 + 2 + 1 + 2);
  });

  describe.each(DIRS)('direction %s', (_dn, dir) => {
    it.each(ATTRS)('map copies mapping_size bytes of the original into the slot (%s)', (_an, attrs) => {
      const { tlb, mem } = rig(release);
      const orig = 0x3400100;
      const data = bytesOf(0xc0ffee, 700);
      mem.write(orig, data);
      const t = tlb.mapSingle(device(), 0, orig, 700, 4096, 0, attrs);
      expect(t).toBe(POOL);
      expect(mem.read(t, 700)).toEqual(data);
      // nothing past mapping_size was copied
      expect(mem.read(t + 700, 300)).toEqual(pattern(t + 700, 300));
      expect(tlb.counters.bytesToDevice).toBe(700);
    });

    it.each(ATTRS)('unmap copies back only for FROM_DEVICE / BIDIRECTIONAL without SKIP_CPU_SYNC (%s)', (_an, attrs) => {
      const { tlb, mem } = rig(release);
      const orig = 0x3400100;
      const data = bytesOf(1, 700);
      mem.write(orig, data);
      const dev = device();
      const t = tlb.mapSingle(dev, 0, orig, 700, 4096, 0, attrs);
      const fromDevice = bytesOf(2, 700);
      mem.write(t, fromDevice); // the device writes the slot
      tlb.unmapSingle(dev, t, 700, 4096, dir, attrs);
      const copiesBack = attrs === 0 && (dir === DmaDirection.FromDevice || dir === DmaDirection.Bidirectional);
      expect(mem.read(orig, 700)).toEqual(copiesBack ? fromDevice : data);
      expect(tlb.counters.bytesToCpu).toBe(copiesBack ? 700 : 0);
      expect(tlb.usedSlots).toBe(0);
      // bytes around the original are never touched
      expect(mem.read(orig - 16, 16)).toEqual(pattern(orig - 16, 16));
      expect(mem.read(orig + 700, 16)).toEqual(pattern(orig + 700, 16));
    });

    it('sync_for_cpu copies the slot back for FROM_DEVICE/BIDIRECTIONAL; sync_for_device copies in for TO_DEVICE/BIDIRECTIONAL', () => {
      const { tlb, mem } = rig(release);
      const dev = device();
      const orig = 0x3410000;
      mem.write(orig, bytesOf(3, 6000));
      const t = tlb.mapSingle(dev, 0, orig, 6000, 8192, 0, 0);
      // the device writes 32 bytes in the second slot; the CPU syncs just that piece
      const devBytes = bytesOf(4, 32);
      mem.write(t + SLOT + 16, devBytes);
      tlb.syncForCpu(dev, t + SLOT + 16, 32, dir);
      const toCpu = dir === DmaDirection.FromDevice || dir === DmaDirection.Bidirectional;
      expect(mem.read(orig + SLOT + 16, 32)).toEqual(toCpu ? devBytes : bytesOf(3, 6000).subarray(SLOT + 16, SLOT + 48));
      // the CPU writes the original; sync for the device
      const cpuBytes = bytesOf(5, 64);
      mem.write(orig + 4096, cpuBytes);
      const before = mem.read(t + 4096, 64);
      tlb.syncForDevice(dev, t + 4096, 64, dir);
      const toDev = dir === DmaDirection.ToDevice || dir === DmaDirection.Bidirectional;
      expect(mem.read(t + 4096, 64)).toEqual(toDev ? cpuBytes : before);
    });
  });

  it('used slots always equal the live mappings\' slots, mappings never overlap or cross a 128-slot segment, and return to 0', () => {
    const opArb = fc.oneof(
      fc.record({ k: fc.constant('map' as const), size: fc.integer({ min: 1, max: 128 * SLOT }), cpu: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ k: fc.constant('unmap' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }), (ops) => {
        const { tlb } = rig(release, 4);
        const dev = device();
        const live: Array<{ t: number; size: number; slots: number }> = [];
        for (const op of ops) {
          if (op.k === 'map') {
            // mapping_size 1 keeps the copy cheap; the allocation is what is checked
            const t = tlb.mapSingle(dev, op.cpu, 0x3400000, 1, op.size, 0, 0);
            if (t === SWIOTLB_MAP_ERROR) continue;
            const slots = Math.ceil(op.size / SLOT);
            const first = (t - POOL) / SLOT;
            expect(Number.isInteger(first)).toBe(true);
            expect(Math.floor(first / 128)).toBe(Math.floor((first + slots - 1) / 128));
            if (op.size >= PAGE) expect((t - POOL) % PAGE).toBe(0);
            for (const m of live) expect(t + slots * SLOT <= m.t || m.t + m.slots * SLOT <= t).toBe(true);
            live.push({ t, size: op.size, slots });
          } else if (live.length > 0) {
            const m = live.splice(op.pick % live.length, 1)[0]!;
            tlb.unmapSingle(dev, m.t, 1, m.size, DmaDirection.ToDevice, 0);
          }
          expect(tlb.usedSlots).toBe(live.reduce((a, m) => a + m.slots, 0));
        }
        for (const m of live.splice(0)) tlb.unmapSingle(dev, m.t, 1, m.size, DmaDirection.ToDevice, 0);
        expect(tlb.usedSlots).toBe(0);
        // the whole pool is free again: 256 full segments fit
        for (let i = 0; i < 256; i++) expect(tlb.mapSingle(dev, 0, 0x3400000, 1, 128 * SLOT, 0, 0)).not.toBe(SWIOTLB_MAP_ERROR);
        expect(tlb.usedSlots).toBe(32768);
      }),
      { seed: release === '5.10' ? 0x5107 : 0x6107, numRuns: 40 },
    );
  });

  it('exhaustion: SWIOTLB_MAP_ERROR and the exact ratelimited message, never a throw', () => {
    const { tlb, log, clock } = rig(release);
    const dev = device();
    const big: number[] = [];
    for (let i = 0; i < 255; i++) big.push(tlb.mapSingle(dev, 0, 0x3400000, 8, 128 * SLOT, 0, 0));
    expect(big.every((t) => t !== SWIOTLB_MAP_ERROR)).toBe(true);
    for (let i = 0; i < 64; i++) expect(tlb.mapSingle(dev, 0, 0x3400000, 8, SLOT, 0, 0)).not.toBe(SWIOTLB_MAP_ERROR);
    expect(tlb.usedSlots).toBe(32704);
    expect(log.lines).toEqual([]);
    // 65 slots do not fit in the 64 left
    let t = 0;
    expect(() => (t = tlb.mapSingle(dev, 0, 0x3400000, 8, 65 * SLOT, 0, 0))).not.toThrow();
    expect(t).toBe(SWIOTLB_MAP_ERROR);
    expect(log.since(0)).toEqual(['edu 0000:00:02.0: swiotlb buffer is full (sz: 133120 bytes), total 32768 (slots), used 32704 (slots)']);
    // the last 64 slots are one free run: 64 fit
    expect(tlb.mapSingle(dev, 0, 0x3400000, 8, 64 * SLOT, 0, 0)).not.toBe(SWIOTLB_MAP_ERROR);
    expect(tlb.usedSlots).toBe(32768);
    expect(tlb.mapSingle(dev, 0, 0x3400000, 4096, 4096, 0, 0)).toBe(SWIOTLB_MAP_ERROR);
    expect(log.since(1)).toEqual(['edu 0000:00:02.0: swiotlb buffer is full (sz: 4096 bytes), total 32768 (slots), used 32768 (slots)']);
    // DMA_ATTR_NO_WARN: no message
    expect(tlb.mapSingle(dev, 0, 0x3400000, 8, 8, 0, DMA_ATTR_NO_WARN)).toBe(SWIOTLB_MAP_ERROR);
    expect(log.lines.length).toBe(2);
    // dev_warn_ratelimited: 10 per 5 s, then "callbacks suppressed" when the interval has passed
    for (let i = 0; i < 12; i++) tlb.mapSingle(dev, 0, 0x3400000, 8, 8, 0, 0);
    expect(log.lines.length).toBe(10);
    clock.advance(5_000_000_001);
    tlb.mapSingle(dev, 0, 0x3400000, 8, 8, 0, 0);
    expect(log.since(10)).toEqual([
      'swiotlb_tbl_map_single: 4 callbacks suppressed',
      'edu 0000:00:02.0: swiotlb buffer is full (sz: 8 bytes), total 32768 (slots), used 32768 (slots)',
    ]);
    expect(tlb.counters.full).toBe(2 + 1 + 12 + 1);
    // freeing one segment makes room again
    tlb.unmapSingle(dev, big[100]!, 8, 128 * SLOT, DmaDirection.ToDevice, 0);
    expect(tlb.mapSingle(dev, 0, 0x3400000, 8, 128 * SLOT, 0, 0)).toBe(big[100]);
  });

  it('mapping_size > alloc_size: "Invalid sizes" once, and the error value', () => {
    const { tlb, log } = rig(release);
    const dev = device();
    expect(tlb.mapSingle(dev, 0, 0x3400000, 8192, 4096, 0, 0)).toBe(SWIOTLB_MAP_ERROR);
    expect(tlb.mapSingle(dev, 0, 0x3400000, 8192, 4096, 0, 0)).toBe(SWIOTLB_MAP_ERROR);
    expect(log.since(0)).toEqual(['edu 0000:00:02.0: Invalid sizes (mapping: 8192 bytes, alloc: 4096 bytes)']);
    expect(tlb.usedSlots).toBe(0);
  });

  it('a segment boundary mask of 0x1fff keeps a 2-slot run from crossing an 8 KiB boundary', () => {
    for (const [mask, expected] of [
      [0xffff_ffffn, 0x7beb3800],
      [0x1fffn, 0x7beb4000],
    ] as const) {
      const { tlb } = rig(release);
      const dev = device({ segBoundaryMask: mask });
      expect(tlb.mapSingle(dev, 0, 0x3400000, SLOT, SLOT, 0, 0)).toBe(0x7beb3000);
      // 3000 bytes: 2 slots, below a page, so stride 1: slot 1 (0x7beb3800-0x7beb47ff) would cross
      // 0x7beb4000, a multiple of 0x2000
      const t = tlb.mapSingle(dev, 0, 0x3401000, 3000, 3000, 0, 0);
      expect(t).toBe(expected);
      if (mask === 0x1fffn) expect(Math.floor(t / 0x2000)).toBe(Math.floor((t + 2 * SLOT - 1) / 0x2000));
    }
  });

  it('min_align_mask 0xfff keeps orig & 0x7ff in the tlb offset (and with alloc_align_mask 0, orig & 0xfff)', () => {
    for (const orig of [0x3400a30, 0x3401230, 0x34017ff, 0x3402800, 0x3403001]) {
      const { tlb, mem } = rig(release);
      const dev = device({ minAlignMask: 0xfff });
      mem.write(orig, bytesOf(orig, 300));
      const t = tlb.mapSingle(dev, 0, orig, 300, 300, 0, 0);
      expect(t % SLOT).toBe(orig % SLOT);
      // slot address bit 11 must match the original's (iotlb_align_mask 0x800): the full 12 bits
      expect((t - POOL) % PAGE).toBe(orig % PAGE);
      expect(mem.read(t, 300)).toEqual(bytesOf(orig, 300));
      mem.write(t, bytesOf(7, 300));
      tlb.unmapSingle(dev, t, 300, 300, DmaDirection.Bidirectional, 0);
      expect(mem.read(orig, 300)).toEqual(bytesOf(7, 300));
      expect(tlb.usedSlots).toBe(0);
    }
    // the first one exactly: orig 0x3400a30 -> slot 1 (bit 11 set) + 0x230
    const { tlb } = rig(release);
    expect(tlb.mapSingle(device({ minAlignMask: 0xfff }), 0, 0x3400a30, 300, 300, 0, 0)).toBe(0x7beb3a30);
  });
});

describe('swiotlb: release differences', () => {
  it('6.1 with 4 CPUs: a map on cpu 2 starts in area 2 (slot 16384); 5.10 ignores the CPU', () => {
    const dev = device();
    expect(rig('6.1', 4).tlb.mapSingle(dev, 2, 0x3400000, 4096, 4096, 0xfff, 0)).toBe(0x7deb3000);
    expect(rig('6.1', 4).tlb.mapSingle(dev, 3, 0x3400000, 4096, 4096, 0xfff, 0)).toBe(0x7eeb3000);
    expect(rig('5.10', 4).tlb.mapSingle(dev, 2, 0x3400000, 4096, 4096, 0xfff, 0)).toBe(0x7beb3000);
  });

  it('6.1: a full area spills into the next one, wrapping after the last', () => {
    const { tlb } = rig('6.1', 4);
    const dev = device();
    // area 2 = slots 16384..24575: 64 segments of 128 slots
    for (let i = 0; i < 64; i++) expect(tlb.mapSingle(dev, 2, 0x3400000, 8, 128 * SLOT, 0, 0)).toBe(0x7deb3000 + i * 128 * SLOT);
    expect(tlb.mapSingle(dev, 2, 0x3400000, 8, 4096, 0, 0)).toBe(0x7eeb3000);
    // area 3 now has slots 2..127 of its first segment and 63 whole segments free: 63 full-segment
    // maps from cpu 3 land there, the 64th wraps to area 0
    for (let i = 0; i < 63; i++) expect(tlb.mapSingle(dev, 3, 0x3400000, 8, 128 * SLOT, 0, 0)).toBe(0x7eeb3000 + (i + 1) * 128 * SLOT);
    expect(tlb.mapSingle(dev, 3, 0x3400000, 8, 128 * SLOT, 0, 0)).toBe(0x7beb3000);
    // a page still fits in area 3, right after the spilled one
    expect(tlb.mapSingle(dev, 3, 0x3400000, 8, 4096, 0, 0)).toBe(0x7eeb4000);
  });

  it('6.1 with alloc_align_mask 0xfff (what dma-iommu passes) and min_align_mask 0xfff: 4 KiB slot + (orig & 0x7ff), bit 11 lost (9.8)', () => {
    const { tlb } = rig('6.1');
    expect(tlb.mapSingle(device({ minAlignMask: 0xfff }), 0, 0x3400a30, 300, 4096, 0xfff, 0)).toBe(0x7beb3230);
  });

  it('unmap: 5.10 frees the slots its caller names, 6.1 the slots recorded at map', () => {
    const dev = device();
    const r5 = rig('5.10');
    const t5 = r5.tlb.mapSingle(dev, 0, 0x3400000, 8, 8 * SLOT, 0, 0);
    r5.tlb.unmapSingle(dev, t5, 8, 2 * SLOT, DmaDirection.ToDevice, 0);
    expect(r5.tlb.usedSlots).toBe(6);
    const r6 = rig('6.1');
    const t6 = r6.tlb.mapSingle(dev, 0, 0x3400000, 8, 8 * SLOT, 0, 0);
    r6.tlb.unmapSingle(dev, t6, 8, 2 * SLOT, DmaDirection.ToDevice, 0);
    expect(r6.tlb.usedSlots).toBe(0);
  });

  it.each(RELEASES)('%s: "Invalid sizes" is dev_warn_once: one flag for the call site, whatever the device', (release) => {
    const { tlb, log } = rig(release);
    const a = device();
    const b = device({ name: '0000:00:03.0', driver: 'nvme', sid: 0x18 });
    expect(tlb.mapSingle(a, 0, 0x3400000, 8192, 4096, 0, 0)).toBe(SWIOTLB_MAP_ERROR);
    expect(tlb.mapSingle(b, 0, 0x3400000, 8192, 4096, 0, 0)).toBe(SWIOTLB_MAP_ERROR);
    expect(log.since(0)).toEqual(['edu 0000:00:02.0: Invalid sizes (mapping: 8192 bytes, alloc: 4096 bytes)']);
  });

  it('min_align_mask 0x1fff and an original at physical address 0: 5.10 still applies the slot-address check (its find_slots has no "orig_addr &&" guard), 6.1 skips it', () => {
    // iotlb_align_mask = 0x1fff & ~0x7ff = 0x1800, stride 4. Slot 0 (0x7beb3000) has bits 12:11 =
    // 0b10, slot 1 (0x7beb3800) 0b11, slot 2 (0x7beb4000) 0b00 = orig's.
    // 5.10.262 kernel/dma/swiotlb.c find_slots(): "if ((slot_addr(tbl_dma_addr, index) &
    // iotlb_align_mask) != (orig_addr & iotlb_align_mask)) { index = wrap_index(index + 1); ...}"
    // 6.1.192 swiotlb_do_find_slots(): "if (orig_addr && (slot_addr(...) & iotlb_align_mask) != ...)"
    const dev = device({ minAlignMask: 0x1fff });
    expect(rig('6.1').tlb.mapSingle(dev, 0, 0, SLOT, SLOT, 0, 0)).toBe(0x7beb3000);
    expect(rig('5.10').tlb.mapSingle(dev, 0, 0, SLOT, SLOT, 0, 0)).toBe(0x7beb4000);
  });

  it('6.1 sync past the recorded allocation: "Buffer overflow detected" once, the copy clamped', () => {
    const { tlb, mem, log } = rig('6.1');
    const dev = device();
    const orig = 0x3420000;
    const t = tlb.mapSingle(dev, 0, orig, 4096, 4096, 0, 0);
    mem.write(t, bytesOf(9, 4096));
    tlb.syncForCpu(dev, t, 8192, DmaDirection.FromDevice);
    expect(log.since(0)).toEqual(['edu 0000:00:02.0: Buffer overflow detected. Allocation size: 4096. Mapping size: 8192.']);
    expect(mem.read(orig, 4096)).toEqual(bytesOf(9, 4096));
    expect(mem.read(orig + 4096, 16)).toEqual(pattern(orig + 4096, 16));
  });
});
