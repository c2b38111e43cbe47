/**
 * The converted VT-d driver as Linux 6.1.192 has it (drivers/iommu/intel/iommu.c): iommu_ops for
 * a paging domain and nothing else -- no IOVA allocation, no DMA-API entry point, no bounce
 * buffers; those moved to the generic layer. Kernel-semantics 9.5.
 *
 * map_pages (→ intel_iommu_map → __domain_mapping), unmap_pages (→ intel_iommu_unmap, widening
 * the gather), iotlb_sync (one PSI over the gathered range), iotlb_sync_map (a PSI under caching
 * mode), flush_iotlb_all (domain-selective), iova_to_phys, and attach via a context entry.
 */
import { hardwareLargepageCaps, lvlToNrPages, alignedNrpages, type DomainPgtable, type IntelPageTable } from '../intel-common/intel-pgtable.js';
import { DEFAULT_DOMAIN_ADDRESS_WIDTH, domainUpdateIommuSuperpage, iommuCalculateAgaw } from '../intel-common/intel-caps.js';
import type { Machine } from '../platform/machine.js';
import { makePte } from '../vtd/entries.js';
import { DMA_FL_PTE_PRESENT, DMA_PTE_LARGE_PAGE, DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE, VTD_PAGE_SIZE, agawToWidth, widthToAgaw } from '../vtd/regs.js';
import { EFAULT, EINVAL, ENOMEM, iovaOffset, iovaPfn } from '../kernel/bits.js';
import { BUG, invariantChecks } from '../kernel/assert.js';
import { checkPgtableRange } from '../intel-common/pgtable-invariants.js';
import { IOMMU_READ, IOMMU_WRITE, iommuIotlbGatherAddPage, type IommuDomain, type IommuOps, type IotlbGather, type MapPagesResult } from './iommu-ops.js';

/** The VT-d part of struct dmar_domain for a DMA domain; its struct iommu_domain is the base. */
export interface DmarDomain extends DomainPgtable, IommuDomain {
  did: number;
  gaw: number;
  /** set_pte_snp: only enforce_cache_coherency sets it, never the DMA API */
  setPteSnp: boolean;
}

/** to_dmar_domain: a domain the core hands back is one this driver allocated */
export function toDmarDomain(d: IommuDomain): DmarDomain {
  return d as DmarDomain;
}

/** Seeded bugs for proving the harness can fail; all off by default. */
export interface IntelIommuFaults {
  /** iotlb_sync_map does nothing (the caching-mode flush of new mappings is lost) */
  noIotlbSyncMap?: boolean;
  /** iotlb_sync does nothing (strict unmaps leave the IOTLB stale) */
  noIotlbSync?: boolean;
}

/** SZ_4K, SZ_2M, SZ_1G */
const SZ_4K = 0x1000;
const SZ_2M = 0x200000;
const SZ_1G = 0x40000000;

export class IntelIommuOps implements IommuOps {
  /** intel_iommu_ops.pgsize_bitmap: 4 KiB; attach adds the superpage sizes */
  readonly pgsizeBitmap = SZ_4K;

  constructor(
    private readonly m: Machine,
    private readonly pt: IntelPageTable,
    readonly faults: IntelIommuFaults = {},
  ) {}

  /**
   * intel_iommu_domain_alloc(DMA) → md_domain_init(57): agaw for 57 bits, a fresh pgd; the
   * rest waits for attach. Every field is set here so the object keeps one shape; pgsize_bitmap
   * is the core's to give (__iommu_domain_alloc), so it starts empty.
   */
  domainAlloc(did: number): DmarDomain {
    const agaw = widthToAgaw(DEFAULT_DOMAIN_ADDRESS_WIDTH);
    const pgdPfn = this.m.ptPages.alloc();
    const gaw = DEFAULT_DOMAIN_ADDRESS_WIDTH;
    return { did, gaw, agaw, pgdPfn, superpage: 0, setPteSnp: false, pgsizeBitmap: 0, apertureEnd: (1n << BigInt(gaw)) - 1n };
  }

  /**
   * intel_iommu_attach_device → prepare_domain_attach_device and domain_attach_iommu for the
   * unit: gaw = min(unit width, MGAW), extra levels knocked out (the fresh pgd has none present,
   * so the same page stays the root), domain_update_iommu_cap (superpage level, pgsize_bitmap,
   * aperture), then the context entry.
   */
  attachDev(domain: IommuDomain, sid: number): number {
    const d = toDmarDomain(domain);
    const caps = this.m.hw.caps;
    const unitAgaw = iommuCalculateAgaw(caps.sagaw);
    d.gaw = Math.min(agawToWidth(unitAgaw), caps.mgaw);
    while (unitAgaw < d.agaw) d.agaw--;
    d.superpage = domainUpdateIommuSuperpage(caps.superPageVal);
    // domain_update_iommu_cap: pgsize_bitmap |= domain_super_pgsize_bitmap()
    d.pgsizeBitmap |= (d.superpage >= 1 ? SZ_2M : 0) | (d.superpage >= 2 ? SZ_1G : 0);
    d.apertureEnd = (1n << BigInt(d.gaw)) - 1n;
    this.m.dmar.contextMapping(sid, d.did, d.pgdPfn, d.agaw);
    return 0;
  }

  /** intel_iommu_map_pages → intel_iommu_map: returns 0 or a negative errno, and bytes mapped. */
  mapPages(domain: IommuDomain, iova: bigint, paddr: bigint, pgsize: number, pgcount: number, iommuProt: number): MapPagesResult {
    const d = toDmarDomain(domain);
    if (pgsize !== SZ_4K && pgsize !== SZ_2M && pgsize !== SZ_1G) return { ret: -EINVAL, mapped: 0 };
    if (((iova | paddr) & BigInt(pgsize - 1)) !== 0n) return { ret: -EINVAL, mapped: 0 };
    const size = pgsize * pgcount;
    let prot = 0;
    if (iommuProt & IOMMU_READ) prot |= DMA_PTE_READ;
    if (iommuProt & IOMMU_WRITE) prot |= DMA_PTE_WRITE;
    if (d.setPteSnp) prot |= DMA_PTE_SNP;
    const maxAddr = iova + BigInt(size);
    if (maxAddr > 1n << BigInt(d.gaw)) {
      this.m.log.print(`DMAR: intel_iommu_map: iommu width (${d.gaw}) is not sufficient for the mapped address (${maxAddr.toString(16)})`);
      return { ret: -EFAULT, mapped: 0 };
    }
    const ret = this.domainMapping(d, iovaPfn(iova), iovaPfn(paddr), alignedNrpages(iovaOffset(paddr), size), prot);
    return { ret, mapped: ret === 0 ? size : 0 };
  }

  /**
   * __domain_mapping as 6.1 has it: one physical range; the superpage level is chosen whenever
   * there is no current PTE; before a superpage run, switch_to_super_page frees the smaller
   * tables under min(round_down(nr_pages, level), entries left in this table) and flushes each.
   */
  private domainMapping(d: DmarDomain, iovPfn: number, physPfn: number, nrPages: number, prot: number): number {
    if ((prot & (DMA_PTE_READ | DMA_PTE_WRITE)) === 0) return -EINVAL;
    const attr = (prot & (DMA_PTE_READ | DMA_PTE_WRITE | DMA_PTE_SNP)) | DMA_FL_PTE_PRESENT;
    const firstPfn = iovPfn;
    let pte = -1;
    let largepageLvl = 0;
    let lvlPages = 0;
    while (nrPages > 0) {
      if (pte < 0) {
        largepageLvl = hardwareLargepageCaps(d.superpage, iovPfn, physPfn, nrPages);
        const slot = this.pt.pfnToDmaPte(d, iovPfn, largepageLvl);
        if (slot === null) return -ENOMEM;
        pte = slot.addr;
        lvlPages = lvlToNrPages(largepageLvl);
        if (largepageLvl > 1) {
          this.m.stats.superpageLeaves++;
          const toNextPage = pte % VTD_PAGE_SIZE === 0 ? 512 : (VTD_PAGE_SIZE - (pte % VTD_PAGE_SIZE)) / 8;
          const pagesToRemove = Math.min(Math.floor(nrPages / lvlPages) * lvlPages, toNextPage * lvlPages);
          this.switchToSuperPage(d, iovPfn, iovPfn + pagesToRemove - 1, largepageLvl);
        }
      }
      const want = makePte(physPfn, attr | (largepageLvl > 1 ? DMA_PTE_LARGE_PAGE : 0));
      const cur = this.pt.read(pte);
      if (cur[0] !== 0 || cur[1] !== 0) {
        const old = this.pt.value(pte);
        const neu = (BigInt(want.hi) << 32n) | BigInt(want.lo);
        this.m.log.print(`DMAR: ERROR: DMA PTE for vPFN 0x${iovPfn.toString(16)} already set (to ${old.toString(16)} not ${neu.toString(16)})`);
      } else {
        this.m.memory.writeQword(pte, want.lo, want.hi);
      }
      nrPages -= lvlPages;
      iovPfn += lvlPages;
      physPfn += lvlPages;
      pte += 8;
      if (nrPages === 0 || pte % VTD_PAGE_SIZE === 0 || (largepageLvl > 1 && nrPages < lvlPages)) pte = -1;
    }
    if (invariantChecks.on) checkPgtableRange(this.pt, d, firstPfn, iovPfn - 1, '__domain_mapping');
    return 0;
  }

  /** switch_to_super_page: free the small tables under [start, end] with one PSI per entry. */
  private switchToSuperPage(d: DmarDomain, startPfn: number, endPfn: number, level: number): void {
    const lvlPages = lvlToNrPages(level);
    let pte = -1;
    while (startPfn <= endPfn) {
      if (pte < 0) pte = this.pt.pfnToDmaPte(d, startPfn, level)!.addr;
      if (this.pt.present(pte)) {
        this.pt.freePagetable(d, startPfn, startPfn + lvlPages - 1, level + 1);
        this.m.dmar.flushIotlbPsi(d.did, startPfn, lvlPages, false);
      }
      pte += 8;
      startPfn += lvlPages;
      if (pte % VTD_PAGE_SIZE === 0) pte = -1;
    }
  }

  /**
   * intel_iommu_unmap_pages → intel_iommu_unmap: at least the page size found at iova is unmapped
   * (the walk stops at a superpage or a non-present entry); cleared tables go on the gather's
   * list; the range joins the gather unless the unmap is queued. Returns the size unmapped.
   */
  unmapPages(domain: IommuDomain, iova: bigint, pgsize: number, pgcount: number, gather: IotlbGather): number {
    const d = toDmarDomain(domain);
    let size = pgsize * pgcount;
    const slot = this.pt.pfnToDmaPte(d, iovaPfn(iova), 0);
    if (slot === null) BUG(`intel_iommu_unmap beyond the domain at 0x${iova.toString(16)}`);
    const levelSize = VTD_PAGE_SIZE * lvlToNrPages(slot.level);
    if (size < levelSize) size = levelSize;
    const startPfn = iovaPfn(iova);
    const lastPfn = iovaPfn(iova + BigInt(size) - 1n);
    this.pt.domainUnmap(d, startPfn, lastPfn, gather.freelist);
    if (!gather.queued) iommuIotlbGatherAddPage(this, d, gather, iova, size);
    return size;
  }

  /** intel_iommu_tlb_sync: one PSI over [start, end] (end inclusive), then free the tables. */
  iotlbSync(domain: IommuDomain, gather: IotlbGather): void {
    if (this.faults.noIotlbSync) {
      this.pt.freeList(gather.freelist);
      return;
    }
    const size = BigInt.asUintN(64, gather.end - gather.start);
    const nrpages = alignedNrpages(iovaOffset(gather.start), Number(size));
    const startPfn = iovaPfn(gather.start);
    this.m.dmar.flushIotlbPsi(toDmarDomain(domain).did, startPfn, nrpages, gather.freelist.length === 0);
    this.pt.freeList(gather.freelist);
  }

  /** intel_iommu_iotlb_sync_map → __mapping_notify_one */
  iotlbSyncMap(domain: IommuDomain, iova: bigint, size: number): void {
    if (this.faults.noIotlbSyncMap) return;
    this.m.dmar.mappingNotify(toDmarDomain(domain).did, iovaPfn(iova), alignedNrpages(iovaOffset(iova), size));
  }

  /** intel_flush_iotlb_all: domain-selective (the flush queue's callback) */
  flushIotlbAll(domain: IommuDomain): void {
    this.m.dmar.flushDomain(toDmarDomain(domain).did);
  }

  /** intel_iommu_iova_to_phys */
  iovaToPhys(domain: IommuDomain, iova: bigint): bigint {
    return this.pt.iovaToPhys(toDmarDomain(domain), iova);
  }
}
