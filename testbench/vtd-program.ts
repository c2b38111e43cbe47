/**
 * Programming the unit directly, as a driver does but without any of a driver's policy: table
 * pages from the page-table region, root and context entries, leaf PTEs at a chosen level, and
 * invalidations submitted through the queue (or the registers when QI is off). Used by the
 * hardware's own tests, its benchmark and the demo; the two kernel models write their tables
 * with their own release's code.
 */
import { entryPfn, makePte, writeContextEntry } from '../vtd/entries.js';
import type { VtdHardware } from '../vtd/hardware.js';
import { contextCommand, iotlbCommand } from '../vtd/inv-reg.js';
import { writeQueue } from '../vtd/qi.js';
import { ccDescriptor, iotlbDescriptor, waitDescriptor, type QiDesc } from '../vtd/qi-desc.js';
import { PAGE_TABLE_REGION } from '../vtd/regions.js';
import {
  CONTEXT_TT_MULTI_LEVEL,
  DMA_CCMD_MASK_NOBIT,
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_WRITE,
  DMA_TLB_IH_NONLEAF,
  InvGranularity,
  VTD_PAGE_SIZE,
  agawToLevel,
  lvlToNrPages,
  pfnLevelOffset,
  vtdLow32,
  vtdPfnAddr,
  widthToAgaw,
} from '../vtd/regs.js';

/** Zeroed 4 KiB pages from the page-table region, handed out lowest first, reused LIFO. */
export class PageTablePool {
  private next: number;
  private readonly free: number[] = [];

  constructor(
    private readonly hw: VtdHardware,
    base = PAGE_TABLE_REGION.start,
  ) {
    this.next = base / VTD_PAGE_SIZE;
  }

  alloc(): number {
    const pfn = this.free.pop() ?? this.next++;
    if (pfn * VTD_PAGE_SIZE >= PAGE_TABLE_REGION.end) throw new Error('page-table region exhausted');
    this.hw.memory.zeroPage(pfn);
    return pfn;
  }

  release(pfn: number): void {
    this.free.push(pfn);
  }
}

export interface DomainTables {
  did: number;
  /** agaw encoding for the context entry's AW field */
  aw: number;
  levels: number;
  rootPfn: number;
}

export class TableProgrammer {
  readonly pool: PageTablePool;
  private rootPfn = -1;
  private readonly statusAddr: number;
  private statusData = 1;
  private readonly scratch = new Uint32Array(2);

  constructor(readonly hw: VtdHardware) {
    this.pool = new PageTablePool(hw);
    this.rootPfn = this.pool.alloc();
    hw.setRootTable(this.rootPfn * VTD_PAGE_SIZE);
    if (hw.caps.qi) hw.enableQueuedInvalidation(this.pool.alloc() * VTD_PAGE_SIZE);
    this.statusAddr = this.pool.alloc() * VTD_PAGE_SIZE;
    hw.enableTranslation(true);
  }

  /** A new, empty second-level table tree for a domain of the given width. */
  newDomain(did: number, width: number): DomainTables {
    const aw = widthToAgaw(width);
    return { did, aw, levels: agawToLevel(aw), rootPfn: this.pool.alloc() };
  }

  /** Point sid's context entry at the domain (allocating the bus's context table). */
  attach(sid: number, d: DomainTables, tt = CONTEXT_TT_MULTI_LEVEL): void {
    writeContextEntry(this.hw.memory, this.rootPfn, sid, { present: true, fpd: false, tt, slptPfn: d.rootPfn, aw: d.aw, did: d.did }, () => this.pool.alloc());
  }

  /** Clear sid's context entry. */
  detach(sid: number): void {
    const mem = this.hw.memory;
    mem.readQword(this.rootPfn * VTD_PAGE_SIZE + (sid >>> 8) * 16, this.scratch);
    if ((this.scratch[0]! & 1) === 0) return;
    const at = entryPfn(this.scratch[0]!, this.scratch[1]!) * VTD_PAGE_SIZE + (sid & 0xff) * 16;
    mem.writeQword(at, 0, 0);
    mem.writeQword(at + 8, 0, 0);
  }

  /** The slot address of the entry for pfn at level, allocating intermediate tables. */
  private slot(d: DomainTables, pfn: number, level: number): number {
    const mem = this.hw.memory;
    let table = d.rootPfn;
    for (let l = d.levels; l > level; l--) {
      const at = table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, l) * 8;
      mem.readQword(at, this.scratch);
      if ((this.scratch[0]! & 3) === 0) {
        const next = this.pool.alloc();
        const e = makePte(next, DMA_PTE_READ | DMA_PTE_WRITE);
        mem.writeQword(at, e.lo, e.hi);
        table = next;
      } else {
        table = entryPfn(this.scratch[0]!, this.scratch[1]!);
      }
    }
    return table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
  }

  /**
   * Map count pages (of the level's size) from iovaPfn to physPfn with R/W bits perm. Level 2 and
   * 3 write superpage leaves (PS set); both pfns must be aligned to the page size.
   */
  map(d: DomainTables, iovaPfn: number, physPfn: number, count: number, perm: number, level = 1): void {
    const span = lvlToNrPages(level);
    if (iovaPfn % span !== 0 || physPfn % span !== 0) throw new Error('superpage mapping not aligned');
    for (let i = 0; i < count; i++) {
      const e = makePte(physPfn + i * span, (perm & 3) | (level > 1 ? DMA_PTE_LARGE_PAGE : 0));
      this.hw.memory.writeQword(this.slot(d, iovaPfn + i * span, level), e.lo, e.hi);
    }
  }

  /** Clear the leaf entries at level for count pages (tables are left in place). */
  unmap(d: DomainTables, iovaPfn: number, count: number, level = 1): void {
    const span = lvlToNrPages(level);
    for (let i = 0; i < count; i++) this.hw.memory.writeQword(this.slot(d, iovaPfn + i * span, level), 0, 0);
  }

  /** Submit descriptors followed by a wait descriptor, and wait for its status write (qi_submit_sync). */
  submit(descs: readonly QiDesc[]): void {
    const hw = this.hw;
    const data = this.statusData++;
    hw.writeQueueTail(writeQueue(hw, hw.queueTail, [...descs, waitDescriptor(data, this.statusAddr)]));
    const status = vtdLow32(hw.memory.readU64(this.statusAddr));
    if (status !== data) throw new Error('invalidation wait did not complete (queue error)');
  }

  private drain(): { dr: boolean; dw: boolean } {
    return { dr: this.hw.caps.drd, dw: this.hw.caps.dwd };
  }

  /** Register path: __iommu_flush_iotlb's command, but never with write drain. */
  flushIotlbPages(did: number, pfn: number, am: number, ih = false): void {
    if (this.hw.queuedInvalidationEnabled) {
      this.submit([iotlbDescriptor(InvGranularity.Page, did, this.drain(), vtdPfnAddr(pfn), ih, am)]);
    } else {
      this.hw.writeIotlbRegister(vtdPfnAddr(pfn) | (ih ? DMA_TLB_IH_NONLEAF : 0n) | BigInt(am), iotlbCommand(InvGranularity.Page, did, false));
    }
  }

  flushIotlbDomain(did: number): void {
    if (this.hw.queuedInvalidationEnabled) {
      this.submit([iotlbDescriptor(InvGranularity.Domain, did, this.drain(), 0n, false, 0)]);
    } else {
      this.hw.writeIotlbRegister(0n, iotlbCommand(InvGranularity.Domain, did, false));
    }
  }

  flushIotlbGlobal(): void {
    if (this.hw.queuedInvalidationEnabled) {
      this.submit([iotlbDescriptor(InvGranularity.Global, 0, this.drain(), 0n, false, 0)]);
    } else {
      this.hw.writeIotlbRegister(0n, iotlbCommand(InvGranularity.Global, 0, false));
    }
  }

  /** Register path: __iommu_flush_context's command. */
  flushContextDevice(sid: number, did: number): void {
    if (this.hw.queuedInvalidationEnabled) {
      this.submit([ccDescriptor(InvGranularity.Page, did, sid, DMA_CCMD_MASK_NOBIT)]);
    } else {
      this.hw.writeContextCommand(contextCommand(InvGranularity.Page, did, sid, DMA_CCMD_MASK_NOBIT));
    }
  }

  flushContextGlobal(): void {
    if (this.hw.queuedInvalidationEnabled) this.submit([ccDescriptor(InvGranularity.Global, 0, 0, 0)]);
    else this.hw.writeContextCommand(contextCommand(InvGranularity.Global, 0, 0, 0));
  }
}
