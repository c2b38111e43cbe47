/**
 * The 5.10 driver's DMA domain (struct dmar_domain for a DMA-API device) and its mapping loop.
 *
 * One domain per device, attached through a context entry with the unit's agaw; an IOVA domain
 * from iova.c initialised by intel_init_iova_domain (start pfn 1, the reserved ranges copied in,
 * a flush queue unless intel_iommu_strict); page tables through the shared table primitives.
 */
import type { Device } from '../kernel/device.js';
import { FlushQueue, type FqEntry } from '../kernel/flush-queue.js';
import { domainUpdateIommuSuperpage, iommuCalculateAgaw } from '../intel-common/intel-caps.js';
import { alignedNrpages, hardwareLargepageCaps, lvlToNrPages, type DomainPgtable, type IntelPageTable } from '../intel-common/intel-pgtable.js';
import { IovaDomain } from '../kernel/iova.js';
import type { Machine } from '../platform/machine.js';
import { sgPhys, type Scatterlist } from '../kernel/scatterlist.js';
import { makePte } from '../vtd/entries.js';
import { DMA_FL_PTE_PRESENT, DMA_PTE_LARGE_PAGE, DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE, VTD_PAGE_SIZE, agawToWidth } from '../vtd/regs.js';
import { EINVAL, ENOMEM, pfnAddr } from '../kernel/bits.js';
import { invariantChecks } from '../kernel/assert.js';
import { checkPgtableRange } from '../intel-common/pgtable-invariants.js';

/** IOVA_START_PFN */
const IOVA_START_PFN = 1;

export interface LegacyDomain extends DomainPgtable {
  did: number;
  /** guest address width after attach: min(agaw width, MGAW) */
  gaw: number;
  iovad: IovaDomain;
  /** null when intel_iommu_strict (no flush queue was created) */
  fq: FlushQueue | null;
}

/**
 * intel_iommu_domain_alloc(DMA) + intel_init_iova_domain + attach (domain_context_mapping).
 * `reserved` is the global reserved list copy_reserved_iova copies (inclusive pfn ranges).
 */
export function createDomain(
  m: Machine,
  pt: IntelPageTable,
  dev: Device,
  did: number,
  reserved: ReadonlyArray<{ lo: number; hi: number }>,
  strict: boolean,
): LegacyDomain {
  const caps = m.hw.caps;
  const agaw = iommuCalculateAgaw(caps.sagaw);
  const gaw = Math.min(agawToWidth(agaw), caps.mgaw);
  const iovad = new IovaDomain('5.10', VTD_PAGE_SIZE, IOVA_START_PFN, m.platform.cpus);
  for (const r of reserved) iovad.reserveIova(r.lo, r.hi);
  const d: LegacyDomain = { did, gaw, agaw, pgdPfn: m.ptPages.alloc(), iovad, fq: null, superpage: domainUpdateIommuSuperpage(caps.superPageVal) };
  if (!strict) {
    // iova.c's flush queue with iommu_flush_iova as the flush callback and the page-list dtor
    d.fq = new FlushQueue(m.platform.cpus, m.clock, {
      flushAll: () => m.dmar.flushDomain(d.did),
      freeEntry: (cpu: number, e: FqEntry) => {
        pt.freeList(e.freelist);
        iovad.freeIovaFast(cpu, e.pfn, e.pages);
      },
    });
  }
  m.dmar.contextMapping(dev.sid, did, d.pgdPfn, agaw);
  return d;
}

/**
 * __domain_mapping as 5.10.262 has it: either one physical range (sg = null) or a scatterlist
 * laid out page by page, each entry on a new IOVA page with its offset kept. The superpage
 * level is chosen only when there is no current PTE (start, a new table page, or the end of a
 * superpage run), and tables under a superpage run are freed without an IOTLB flush.
 */
export function domainMapping5_10(
  m: Machine,
  pt: IntelPageTable,
  d: LegacyDomain,
  iovPfn: number,
  sg: Scatterlist[] | null,
  physPfn: number,
  nrPages: number,
  prot: number,
): number {
  if ((prot & (DMA_PTE_READ | DMA_PTE_WRITE)) === 0) return -EINVAL;
  // every leaf gets bit 0 whatever the direction (eea53c581688 in 5.10.y)
  const attr = (prot & (DMA_PTE_READ | DMA_PTE_WRITE | DMA_PTE_SNP)) | DMA_FL_PTE_PRESENT;
  const firstPfn = iovPfn;
  let sgRes = 0;
  let sgIdx = 0;
  if (sg === null) sgRes = nrPages;
  let pte = -1;
  let largepageLvl = 0;
  let large = false;
  while (nrPages > 0) {
    if (sgRes === 0) {
      const s = sg![sgIdx]!;
      const pgoff = s.offset % VTD_PAGE_SIZE;
      sgRes = alignedNrpages(s.offset, s.length);
      s.dmaAddress = pfnAddr(iovPfn) + BigInt(pgoff);
      s.dmaLength = s.length;
      physPfn = Math.floor((sgPhys(s) - pgoff) / VTD_PAGE_SIZE);
    }
    if (pte < 0) {
      largepageLvl = hardwareLargepageCaps(d.superpage, iovPfn, physPfn, sgRes);
      const slot = pt.pfnToDmaPte(d, iovPfn, largepageLvl);
      if (slot === null) return -ENOMEM;
      pte = slot.addr;
      if (largepageLvl > 1) {
        large = true;
        m.stats.superpageLeaves++;
        const lvlPages = lvlToNrPages(largepageLvl);
        const endPfn = iovPfn + Math.floor(sgRes / lvlPages) * lvlPages - 1;
        pt.freePagetable(d, iovPfn, endPfn, largepageLvl + 1);
      } else {
        large = false;
      }
    }
    const want = makePte(physPfn, attr | (large ? DMA_PTE_LARGE_PAGE : 0));
    const cur = pt.read(pte);
    if (cur[0] !== 0 || cur[1] !== 0) {
      // cmpxchg from 0 failed: the old value stays
      const old = pt.value(pte);
      const neu = (BigInt(want.hi) << 32n) | BigInt(want.lo);
      m.log.print(`DMAR: ERROR: DMA PTE for vPFN 0x${iovPfn.toString(16)} already set (to ${old.toString(16)} not ${neu.toString(16)})`);
    } else {
      m.memory.writeQword(pte, want.lo, want.hi);
    }
    const lvlPages = lvlToNrPages(largepageLvl);
    nrPages -= lvlPages;
    iovPfn += lvlPages;
    physPfn += lvlPages;
    sgRes -= lvlPages;
    pte += 8;
    if (nrPages === 0 || pte % VTD_PAGE_SIZE === 0 || (largepageLvl > 1 && sgRes < lvlPages)) pte = -1;
    if (sgRes === 0 && nrPages > 0) sgIdx++;
  }
  if (invariantChecks.on) checkPgtableRange(pt, d, firstPfn, iovPfn - 1, '__domain_mapping');
  return 0;
}

/** domain_mapping: __domain_mapping, then one map notification for the whole call. */
export function domainMapping(
  m: Machine,
  pt: IntelPageTable,
  d: LegacyDomain,
  iovPfn: number,
  sg: Scatterlist[] | null,
  physPfn: number,
  nrPages: number,
  prot: number,
): number {
  const ret = domainMapping5_10(m, pt, d, iovPfn, sg, physPfn, nrPages, prot);
  if (ret !== 0) return ret;
  m.dmar.mappingNotify(d.did, iovPfn, nrPages);
  return 0;
}
