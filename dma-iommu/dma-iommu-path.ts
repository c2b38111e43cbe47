/**
 * The generic path: Linux 6.1.192's iommu_dma_ops over the converted VT-d driver.
 *
 * At probe every group gets a default domain: IOMMU_DOMAIN_DMA (strict) for an untrusted PCI
 * device or when DMA is strict, IOMMU_DOMAIN_DMA_FQ otherwise; caching mode forces strict
 * (iommu_set_dma_strict from intel_iommu_init). Domain ids go in probe order; each DMA domain
 * gets its cookie (iommu_dma_init_domain: granule 4 KiB, start pfn 1, the reserved regions) and,
 * for DMA_FQ, its flush queue (iommu_dma_init_fq). Kernel-semantics 9.1.1, 9.2.1, 9.5.1.
 */
import type { DomainPgtable, PresentLeaf } from '../intel-common/intel-pgtable.js';
import type { DmaDirection, Device } from '../kernel/device.js';
import { DeviceTable, collectLeaks, collectStats, type CoherentAlloc, type DmaPath, type LeakReport, type PathStats } from '../platform/dma-api.js';
import { FlushQueue } from '../kernel/flush-queue.js';
import { IntelPageTable } from '../intel-common/intel-pgtable.js';
import { IovaDomain, type IovaFaults } from '../kernel/iova.js';
import { Machine, probeOrder, type PlatformConfig } from '../platform/machine.js';
import type { SgTable } from '../kernel/scatterlist.js';
import {
  iommuDmaAlloc,
  iommuDmaFree,
  iommuDmaMapPage,
  iommuDmaMapSg,
  iommuDmaSyncSg,
  iommuDmaSyncSingle,
  iommuDmaUnmapPage,
  iommuDmaUnmapSg,
  type DmaDomain,
  type DmaIommuContext,
  type DmaIommuFaults,
} from './dma-iommu.js';
import { IntelIommuOps, toDmarDomain, type DmarDomain, type IntelIommuFaults } from './intel-iommu.js';
import { IommuCore, type IommuCoreFaults } from './iommu.js';

/** Every seeded bug of the generic path: the DMA layer, the IOMMU core, the VT-d ops and the 6.1 IOVA allocator. */
export type GenericFaults = DmaIommuFaults & IntelIommuFaults & IommuCoreFaults & IovaFaults;

export class DmaIommu implements DmaPath {
  readonly release = '6.1' as const;
  readonly machine: Machine;
  private readonly pt: IntelPageTable;
  private readonly domains = new Map<Device, DmaDomain<DmarDomain>>();
  private readonly ctx: DmaIommuContext;
  private readonly byId: DeviceTable;

  constructor(
    platform: PlatformConfig,
    readonly devices: readonly Device[],
    ids: readonly string[],
    reserved: ReadonlyArray<{ lo: number; hi: number }>,
    faults: GenericFaults = {},
  ) {
    const m = new Machine('6.1', platform);
    this.machine = m;
    this.pt = new IntelPageTable(m.memory, m.ptPages, '6.1');
    // the one place the driver is chosen: the generic layer sees only IommuOps
    const ops = new IntelIommuOps(m, this.pt, faults);
    const core = new IommuCore(ops, m.trace, faults);
    this.ctx = { m, core, domainOf: (d) => this.domain(d), forcedac: platform.forcedac, faults };
    let strict = platform.strict;
    if (m.hw.caps.cm) {
      m.log.print('DMAR: IOMMU batching disallowed due to virtualization');
      strict = true;
    }
    this.byId = new DeviceTable(devices, ids);
    for (const g of probeOrder(devices)) {
      const did = m.dmar.allocDomainId();
      if (typeof g === 'number') continue;
      const dmar = toDmarDomain(core.attachDevice(g.sid, did));
      const iovad = new IovaDomain('6.1', 4096, 1, platform.cpus, faults);
      for (const r of reserved) iovad.reserveIova(r.lo, r.hi);
      // iommu_get_def_domain_type: untrusted PCI devices always get a strict DMA domain
      const fqDomain = !strict && (!(g.pci && g.untrusted) || faults.lazyUntrusted === true);
      const dd: DmaDomain<DmarDomain> = { domain: dmar, iovad, fq: null };
      if (fqDomain) {
        dd.fq = new FlushQueue(platform.cpus, m.clock, {
          flushAll: () => core.flushIotlbAll(dmar),
          // fq_ring_free: the table pages, then the IOVA
          freeEntry: (cpu, e) => {
            this.pt.freeList(e.freelist);
            iovad.freeIovaFast(cpu, e.pfn, e.pages);
          },
        });
      }
      this.domains.set(g, dd);
    }
  }

  device(id: string): Device {
    return this.byId.get(id);
  }

  private domain(dev: Device): DmaDomain<DmarDomain> {
    const d = this.domains.get(dev);
    if (d === undefined) throw new Error(`${dev.name} has no DMA domain`);
    return d;
  }

  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, cpu: number): bigint {
    return iommuDmaMapPage(this.ctx, dev, phys, size, dir, 0, cpu);
  }

  unmapPage(dev: Device, addr: bigint, size: number, dir: DmaDirection, cpu: number): void {
    iommuDmaUnmapPage(this.ctx, dev, addr, size, dir, 0, cpu);
  }

  /** dma_map_sg: a negative result from the ops becomes 0 */
  mapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): number {
    const r = iommuDmaMapSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, 0, cpu);
    sgt.nents = Math.max(r, 0);
    return sgt.nents;
  }

  unmapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): void {
    iommuDmaUnmapSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, 0, cpu);
  }

  syncSingle(dev: Device, addr: bigint, size: number, dir: DmaDirection, forCpu: boolean): void {
    iommuDmaSyncSingle(this.ctx, dev, addr, size, dir, forCpu);
  }

  syncSg(dev: Device, sgt: SgTable, dir: DmaDirection, forCpu: boolean): void {
    iommuDmaSyncSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, forCpu);
  }

  allocCoherent(dev: Device, size: number, cpu: number): CoherentAlloc | null {
    const b = iommuDmaAlloc(this.ctx, dev, size, cpu);
    // the handle and the page array are all iommu_dma_free needs
    return b === null ? null : { handle: b.handle, size, pfns: b.pfns, token: null };
  }

  freeCoherent(dev: Device, buf: CoherentAlloc, cpu: number): void {
    iommuDmaFree(this.ctx, dev, buf.size, buf, cpu);
  }

  /** iommu_dma_ops has no .dma_supported: dma_supported() says yes to every mask */
  setDmaMask(dev: Device, mask: bigint): boolean {
    dev.dmaMask = mask;
    return true;
  }

  setCoherentMask(dev: Device, mask: bigint): boolean {
    dev.coherentDmaMask = mask;
    return true;
  }

  iovaToPhys(dev: Device, addr: bigint): bigint {
    return this.pt.iovaToPhys(this.domain(dev).domain, addr);
  }

  iovaPfnToPhysPfn(dev: Device, pfn: number): number {
    return this.pt.iovaPfnToPhysPfn(this.domain(dev).domain, pfn);
  }

  presentLeaves(dev: Device): PresentLeaf[] {
    return this.pt.leaves(this.domain(dev).domain);
  }

  domainPgtable(dev: Device): DomainPgtable {
    return this.domain(dev).domain;
  }

  stats(): PathStats {
    return collectStats(this.machine, this.domains.values());
  }

  leaks(): LeakReport {
    return collectLeaks(this.machine, this.pt, [...this.domains.values()].map((d) => ({ iovad: d.iovad, fq: d.fq, tables: d.domain })));
  }
}
