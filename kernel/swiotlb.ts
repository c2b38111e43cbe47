/**
 * kernel/dma/swiotlb.c: the bounce-buffer pool, with each release's slot search and copy rules.
 *
 * Both releases: 2 KiB slots (IO_TLB_SHIFT 11) in 128-slot segments that free-run counts never
 * cross, a 64 MiB page-aligned pool, per-slot original addresses, and the CVE-2022-0854 end state
 * -- map always copies the original into the slot, whatever the direction or attributes
 * (kernel-semantics 10.10 for 5.10.262, 9.8 for 6.1.192).
 * 5.10.262: one pool with one rotating index; no alloc_align_mask argument; the caller passes the
 * allocation size back at unmap; syncs find the original from the slot without overflow checks.
 * 6.1.192: the pool is split into areas (one per possible CPU, rounded up to a power of two, each
 * at least a segment), the search starts in the calling CPU's area; alloc_align_mask is ORed with
 * the slot mask and removed from the min-align check (the 2024 alignment backports, read in the
 * 6.1.192 source); slots record the allocation size left and swiotlb_bounce() checks offsets.
 */
import type { PhysMemory } from '../vtd/memory.js';
import { SWIOTLB_REGION, type PhysRegion } from '../vtd/regions.js';
import { DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DmaDirection, ULONG_MAX, devPrefix, type Device } from './device.js';
import { RateLimit, type KernelLog } from './log.js';
import { PAGE_SHIFT, PAGE_SIZE, roundupPowOfTwo, type Release } from './release.js';

export const IO_TLB_SHIFT = 11;
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
export const IO_TLB_SEGSIZE = 128;
export const IO_TLB_DEFAULT_SIZE = 64 << 20;
/** returned instead of a slot address on failure: (phys_addr_t)DMA_MAPPING_ERROR */
export const SWIOTLB_MAP_ERROR = -1;
const INVALID_PHYS_ADDR = -1;

/** nr_slots(): slots needed for `bytes` */
export function nrSlots(bytes: number): number {
  return Math.ceil(bytes / IO_TLB_SIZE);
}

interface Area {
  index: number;
  used: number;
}

export interface SwiotlbCounters {
  maps: number;
  unmaps: number;
  full: number;
  bytesToDevice: number;
  bytesToCpu: number;
}

export class Swiotlb {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  readonly areaNslabs: number;
  /** free-run count from each slot to the end of its run, within the segment (0: in use) */
  /**
   * The slot arrays, made on first use: swiotlb_init_io_tlb_mem's values, built lazily because
   * most runs never bounce and a run builds two pools (one per path).
   */
  private slots: { list: Int32Array; origAddr: Float64Array; allocSize: Float64Array } | undefined;

  private get list(): Int32Array {
    return (this.slots ??= this.initSlots()).list;
  }

  private get origAddr(): Float64Array {
    return (this.slots ??= this.initSlots()).origAddr;
  }

  private get allocSize(): Float64Array {
    return (this.slots ??= this.initSlots()).allocSize;
  }

  /** swiotlb_init_io_tlb_mem: every slot free, each list entry the slots left in its segment. */
  private initSlots(): { list: Int32Array; origAddr: Float64Array; allocSize: Float64Array } {
    const list = new Int32Array(this.nslabs);
    for (let i = 0; i < this.nslabs; i++) list[i] = IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE);
    return { list, origAddr: new Float64Array(this.nslabs).fill(INVALID_PHYS_ADDR), allocSize: new Float64Array(this.nslabs) };
  }
  private readonly areas: Area[] = [];
  readonly counters: SwiotlbCounters = { maps: 0, unmaps: 0, full: 0, bytesToDevice: 0, bytesToCpu: 0 };
  /** bumped whenever a slot's original address is set or cleared (what origOf answers moved) */
  origGeneration = 0;
  private readonly fullLimit = new RateLimit('swiotlb_tbl_map_single');

  constructor(
    readonly release: Release,
    private readonly memory: PhysMemory,
    private readonly log: KernelLog,
    ncpus: number,
    region: PhysRegion = SWIOTLB_REGION,
  ) {
    this.start = region.start;
    this.nslabs = Math.floor((region.end - region.start) / IO_TLB_SIZE);
    this.end = this.start + this.nslabs * IO_TLB_SIZE;
    // 6.1: swiotlb_adjust_nareas(num_possible_cpus()) then limit_nareas: each area >= a segment
    let nareas = release === '6.1' ? roundupPowOfTwo(Math.max(1, ncpus)) : 1;
    while (nareas > 1 && this.nslabs < nareas * IO_TLB_SEGSIZE) nareas /= 2;
    this.nareas = nareas;
    this.areaNslabs = this.nslabs / nareas;
    for (let a = 0; a < nareas; a++) this.areas.push({ index: 0, used: 0 });
  }

  /** is_swiotlb_buffer */
  isSwiotlbBuffer(addr: number): boolean {
    return addr >= this.start && addr < this.end;
  }

  /** The original address a byte of a slot stands for (reports), or -1 if the slot is free. */
  origOf(addr: number): number {
    if (this.slots === undefined) return -1;
    const index = Math.floor((addr - this.start) / IO_TLB_SIZE);
    const orig = this.origAddr[index]!;
    return orig === INVALID_PHYS_ADDR ? -1 : orig + (addr - (this.start + index * IO_TLB_SIZE));
  }

  /** slots in use (a leak check wants 0 once everything is unmapped) */
  get usedSlots(): number {
    let n = 0;
    for (const a of this.areas) n += a.used;
    return n;
  }

  /** swiotlb_align_offset */
  private alignOffset(dev: Device, addr: number): number {
    return addr & dev.minAlignMask & (IO_TLB_SIZE - 1);
  }

  /** swiotlb_max_mapping_size: a segment, less the min-align slack */
  maxMappingSize(dev: Device): number {
    const minAlign = dev.minAlignMask === 0 ? 0 : Math.ceil((dev.minAlignMask + 1) / IO_TLB_SIZE) * IO_TLB_SIZE;
    return IO_TLB_SIZE * IO_TLB_SEGSIZE - minAlign;
  }

  /** find_slots (5.10) / swiotlb_do_find_slots (6.1) in one area; returns the slot or -1. */
  private findSlotsInArea(dev: Device, areaIndex: number, orig: number, allocSize: number, allocAlignMask: number): number {
    const area = this.areas[areaIndex]!;
    const boundaryMask = dev.segBoundaryMask;
    const tblDmaAddr = Number(BigInt(this.start) & boundaryMask);
    // get_max_slots: ~0UL would overflow nr_slots(mask + 1)
    const maxSlots = boundaryMask === ULONG_MAX ? 2 ** (64 - IO_TLB_SHIFT) : nrSlots(Number(boundaryMask) + 1);
    const nslots = nrSlots(allocSize);
    const offset = this.alignOffset(dev, orig);
    let iotlbAlignMask: number;
    let stride: number;
    if (this.release === '6.1') {
      allocAlignMask |= IO_TLB_SIZE - 1;
      iotlbAlignMask = dev.minAlignMask & ~allocAlignMask;
      stride = (iotlbAlignMask >>> IO_TLB_SHIFT) + 1;
      if (allocSize >= PAGE_SIZE) stride = Math.max(stride, stride << (PAGE_SHIFT - IO_TLB_SHIFT));
      stride = Math.max(stride, (allocAlignMask >>> IO_TLB_SHIFT) + 1);
    } else {
      iotlbAlignMask = dev.minAlignMask & ~(IO_TLB_SIZE - 1);
      stride = (iotlbAlignMask >>> IO_TLB_SHIFT) + 1;
      if (allocSize >= PAGE_SIZE) stride = Math.max(stride, stride << (PAGE_SHIFT - IO_TLB_SHIFT));
    }
    if (nslots > this.areaNslabs - area.used) return -1;
    const wrapIndex = (i: number): number => (i >= this.areaNslabs ? 0 : i);
    const slotBase = areaIndex * this.areaNslabs;
    let index = wrapIndex(Math.ceil(area.index / stride) * stride);
    const wrap = index;
    const shiftSlots = nrSlots(tblDmaAddr);
    do {
      const slotIndex = slotBase + index;
      const slotAddr = tblDmaAddr + slotIndex * IO_TLB_SIZE;
      // 6.1 skips the min-align check for an original at address 0; 5.10's find_slots always does it
      if ((this.release === '5.10' || orig !== 0) && (slotAddr & iotlbAlignMask) !== (orig & iotlbAlignMask)) {
        index = wrapIndex(index + 1);
        continue;
      }
      // iommu_is_span_boundary: the run must not cross the device's segment boundary
      const within = (shiftSlots + slotIndex) % maxSlots;
      if (within + nslots <= maxSlots && this.list[slotIndex]! >= nslots) {
        for (let i = slotIndex; i < slotIndex + nslots; i++) {
          this.list[i] = 0;
          this.allocSize[i] = allocSize - (offset + (i - slotIndex) * IO_TLB_SIZE);
        }
        let count = 0;
        for (let i = slotIndex - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i]! > 0; i--) {
          this.list[i] = ++count;
        }
        area.index = index + nslots < this.areaNslabs ? index + nslots : 0;
        area.used += nslots;
        return slotIndex;
      }
      index = wrapIndex(index + stride);
    } while (index !== wrap);
    return -1;
  }

  /**
   * swiotlb_tbl_map_single: find slots for allocSize (+ the min-align offset), record the
   * original address of each slot, copy mappingSize bytes in. Returns the slot address plus the
   * offset, or SWIOTLB_MAP_ERROR (logging as the kernel does).
   */
  mapSingle(dev: Device, cpu: number, orig: number, mappingSize: number, allocSize: number, allocAlignMask: number, attrs: number): number {
    const offset = this.alignOffset(dev, orig);
    if (mappingSize > allocSize) {
      this.log.once('swiotlb_tbl_map_single:invalid-sizes', `${devPrefix(dev)}Invalid sizes (mapping: ${mappingSize} bytes, alloc: ${allocSize} bytes)`);
      return SWIOTLB_MAP_ERROR;
    }
    let index = -1;
    const start = this.release === '6.1' ? cpu & (this.nareas - 1) : 0;
    let a = start;
    do {
      index = this.findSlotsInArea(dev, a, orig, allocSize + offset, allocAlignMask);
      if (index >= 0) break;
      a = a + 1 >= this.nareas ? 0 : a + 1;
    } while (a !== start);
    if (index < 0) {
      this.counters.full++;
      if ((attrs & DMA_ATTR_NO_WARN) === 0) {
        this.log.ratelimited(
          this.fullLimit,
          `${devPrefix(dev)}swiotlb buffer is full (sz: ${allocSize} bytes), total ${this.nslabs} (slots), used ${this.usedSlots} (slots)`,
        );
      }
      return SWIOTLB_MAP_ERROR;
    }
    for (let i = 0; i < nrSlots(allocSize + offset); i++) this.origAddr[index + i] = orig + i * IO_TLB_SIZE;
    this.origGeneration++;
    const tlb = this.start + index * IO_TLB_SIZE + offset;
    this.counters.maps++;
    // both releases: bounce the original in at map, for every direction (CVE-2022-0854 fix)
    this.bounce(dev, tlb, mappingSize, true);
    return tlb;
  }

  /**
   * swiotlb_tbl_unmap_single: copy back for FROM_DEVICE/BIDIRECTIONAL unless SKIP_CPU_SYNC, then
   * release the slots. 5.10 frees nr_slots(allocSize + offset) as its caller says; 6.1 takes the
   * size from the slot.
   */
  unmapSingle(dev: Device, tlb: number, mappingSize: number, allocSize: number, dir: DmaDirection, attrs: number): void {
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DmaDirection.FromDevice || dir === DmaDirection.Bidirectional)) {
      this.bounce(dev, tlb, mappingSize, false);
    }
    const offset = this.alignOffset(dev, tlb);
    const index = Math.floor((tlb - offset - this.start) / IO_TLB_SIZE);
    const nslots = this.release === '6.1' ? nrSlots(this.allocSize[index]! + offset) : nrSlots(allocSize + offset);
    this.releaseSlots(index, nslots);
    this.counters.unmaps++;
  }

  /** swiotlb_release_slots / the free part of 5.10's unmap: merge with the free runs around. */
  private releaseSlots(index: number, nslots: number): void {
    const area = this.areas[Math.floor(index / this.areaNslabs)]!;
    let count = index + nslots < Math.ceil((index + 1) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE ? this.list[index + nslots]! : 0;
    this.origGeneration++;
    for (let i = index + nslots - 1; i >= index; i--) {
      this.list[i] = ++count;
      this.origAddr[i] = INVALID_PHYS_ADDR;
      this.allocSize[i] = 0;
    }
    for (let i = index - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i]! > 0; i--) this.list[i] = ++count;
    area.used -= nslots;
  }

  /** swiotlb_sync_single_for_device: TO_DEVICE/BIDIRECTIONAL copy the original in. */
  syncForDevice(dev: Device, tlb: number, size: number, dir: DmaDirection): void {
    if (dir === DmaDirection.ToDevice || dir === DmaDirection.Bidirectional) this.bounce(dev, tlb, size, true);
  }

  /** swiotlb_sync_single_for_cpu: FROM_DEVICE/BIDIRECTIONAL copy the slot back. */
  syncForCpu(dev: Device, tlb: number, size: number, dir: DmaDirection): void {
    if (dir === DmaDirection.FromDevice || dir === DmaDirection.Bidirectional) this.bounce(dev, tlb, size, false);
  }

  /** swiotlb_bounce: copy between the slot at tlb and the original it records. */
  private bounce(dev: Device, tlb: number, size: number, toDevice: boolean): void {
    const index = Math.floor((tlb - this.start) / IO_TLB_SIZE);
    let orig = this.origAddr[index]!;
    if (orig === INVALID_PHYS_ADDR) return;
    if (this.release === '6.1') {
      let allocSize = this.allocSize[index]!;
      let tlbOffset = tlb & (IO_TLB_SIZE - 1);
      const origOffset = this.alignOffset(dev, orig);
      if (tlbOffset < origOffset) {
        this.log.once('swiotlb_bounce:before', `${devPrefix(dev)}Access before mapping start detected. orig offset ${origOffset}, requested offset ${tlbOffset}.`);
        return;
      }
      tlbOffset -= origOffset;
      if (tlbOffset > allocSize) {
        this.log.once('swiotlb_bounce:overflow1', `${devPrefix(dev)}Buffer overflow detected. Allocation size: ${allocSize}. Mapping size: ${size}+${tlbOffset}.`);
        return;
      }
      orig += tlbOffset;
      allocSize -= tlbOffset;
      if (size > allocSize) {
        this.log.once('swiotlb_bounce:overflow2', `${devPrefix(dev)}Buffer overflow detected. Allocation size: ${allocSize}. Mapping size: ${size}.`);
        size = allocSize;
      }
    } else {
      // 5.10.262 swiotlb_tbl_sync_single: the slot's original plus the offset within the slot
      orig += (tlb & (IO_TLB_SIZE - 1)) - this.alignOffset(dev, orig);
    }
    if (size <= 0) return;
    if (toDevice) {
      this.memory.copy(tlb, orig, size);
      this.counters.bytesToDevice += size;
    } else {
      this.memory.copy(orig, tlb, size);
      this.counters.bytesToCpu += size;
    }
  }
}

/**
 * The padding of a page-aligned bounce slot, cleaned before the device sees it: only the tail
 * when the data was just copied in, else the whole slot. 5.10 bounce_map_single and 6.1
 * iommu_dma_map_page (before v6.10's rework) use the same rule.
 */
export function zeroBouncePadding(memory: PhysMemory, tlb: number, size: number, alignedSize: number, dir: DmaDirection, attrs: number): void {
  if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DmaDirection.ToDevice || dir === DmaDirection.Bidirectional)) {
    memory.fill(tlb + size, alignedSize - size, 0);
  } else {
    memory.fill(tlb, alignedSize, 0);
  }
}
