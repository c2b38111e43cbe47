/**
 * The legacy path: the VT-d driver of Linux 5.10.262 with its own DMA ops.
 *
 * At probe each device gets a DMA domain of its own (domain id in probe order, 0 and 1
 * reserved), attached through a context entry, and intel_iommu_probe_finalize picks its ops:
 * bounce_dma_ops for an untrusted PCI device, intel_dma_ops otherwise. intel_iommu_strict comes
 * from the `strict` option and is forced by caching mode (init_dmars, kernel-semantics 10.1).
 */
import type { DomainPgtable, PresentLeaf } from '../intel-common/intel-pgtable.js';
import { DmaDirection, dmaBitMask, type Device } from '../kernel/device.js';
import { DeviceTable, collectLeaks, collectStats, type CoherentAlloc, type DmaPath, type LeakReport, type PathStats } from '../platform/dma-api.js';
import { IntelPageTable } from '../intel-common/intel-pgtable.js';
import { Machine, probeOrder, type PlatformConfig } from '../platform/machine.js';
import type { SgTable } from '../kernel/scatterlist.js';
import { VTD_PAGE_SIZE } from '../vtd/regs.js';
import { bounceMapSg, bounceMapSingle, bounceSyncSg, bounceSyncSingle, bounceUnmapSg, bounceUnmapSingle } from './bounce.js';
import { createDomain, type LegacyDomain } from './domain.js';
import {
  intelAllocCoherent,
  intelFreeCoherent,
  intelMapPage,
  intelMapSg,
  intelUnmap,
  intelUnmapSg,
  type CoherentBuffer,
  type LegacyContext,
  type LegacyFaults,
} from './dma-ops.js';

export class LegacyIntel implements DmaPath {
  readonly release = '5.10' as const;
  readonly machine: Machine;
  private readonly pt: IntelPageTable;
  private readonly domains = new Map<Device, LegacyDomain>();
  private readonly bounce = new Set<Device>();
  private readonly ctx: LegacyContext;
  private readonly byId: DeviceTable;

  constructor(
    platform: PlatformConfig,
    readonly devices: readonly Device[],
    ids: readonly string[],
    reserved: ReadonlyArray<{ lo: number; hi: number }>,
    faults: LegacyFaults = {},
  ) {
    const m = new Machine('5.10', platform);
    this.machine = m;
    this.pt = new IntelPageTable(m.memory, m.ptPages, '5.10');
    let strict = platform.strict;
    if (m.hw.caps.cm && !strict) {
      m.log.print('DMAR: Disable batched IOTLB flush due to virtualization');
      strict = true;
    }
    this.ctx = { m, pt: this.pt, domainOf: (d) => this.domain(d), strict, forcedac: platform.forcedac, faults };
    this.byId = new DeviceTable(devices, ids);
    // probe in bus order with q35's own functions; each group's default domain takes a DID
    for (const g of probeOrder(devices)) {
      const did = m.dmar.allocDomainId();
      if (typeof g === 'number') continue;
      this.domains.set(g, createDomain(m, this.pt, g, did, reserved, strict));
      if (g.pci && g.untrusted) this.bounce.add(g);
    }
  }

  device(id: string): Device {
    return this.byId.get(id);
  }

  private domain(dev: Device): LegacyDomain {
    const d = this.domains.get(dev);
    if (d === undefined) throw new Error(`${dev.name} has no domain`);
    return d;
  }

  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, cpu: number): bigint {
    if (this.bounce.has(dev)) return bounceMapSingle(this.ctx, dev, phys, size, dir, 0, dev.dmaMask, cpu);
    return intelMapPage(this.ctx, dev, phys, size, dir, cpu);
  }

  unmapPage(dev: Device, addr: bigint, size: number, dir: DmaDirection, cpu: number): void {
    if (this.bounce.has(dev)) bounceUnmapSingle(this.ctx, dev, addr, size, dir, 0, cpu);
    else intelUnmap(this.ctx, dev, addr, size, cpu);
  }

  mapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): number {
    const n = this.bounce.has(dev)
      ? bounceMapSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, 0, cpu)
      : intelMapSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, cpu);
    sgt.nents = n;
    return n;
  }

  unmapSg(dev: Device, sgt: SgTable, dir: DmaDirection, cpu: number): void {
    if (this.bounce.has(dev)) bounceUnmapSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, 0, cpu);
    else intelUnmapSg(this.ctx, dev, sgt.sgl, sgt.origNents, cpu);
  }

  /** intel_dma_ops has no sync callbacks: only bounce_dma_ops copies anything. */
  syncSingle(dev: Device, addr: bigint, size: number, dir: DmaDirection, forCpu: boolean): void {
    if (this.bounce.has(dev)) bounceSyncSingle(this.ctx, dev, addr, size, dir, forCpu);
  }

  syncSg(dev: Device, sgt: SgTable, dir: DmaDirection, forCpu: boolean): void {
    if (this.bounce.has(dev)) bounceSyncSg(this.ctx, dev, sgt.sgl, sgt.origNents, dir, forCpu);
  }

  /** Both ops tables use intel_alloc_coherent: coherent buffers are never bounced. */
  allocCoherent(dev: Device, size: number, cpu: number): CoherentAlloc | null {
    const b = intelAllocCoherent(this.ctx, dev, size, cpu);
    if (b === null) return null;
    const pfns: number[] = [];
    for (let i = 0; i < Math.ceil(size / VTD_PAGE_SIZE); i++) pfns.push(b.phys / VTD_PAGE_SIZE + i);
    return { handle: b.handle, size, pfns, token: b };
  }

  freeCoherent(dev: Device, buf: CoherentAlloc, cpu: number): void {
    intelFreeCoherent(this.ctx, dev, buf.size, buf.token as CoherentBuffer, cpu);
  }

  /**
   * dma_set_mask with .dma_supported = dma_direct_supported: any mask of 32 bits or more, or one
   * that covers ZONE_DMA (24 bits) -- narrower masks get -EIO.
   */
  setDmaMask(dev: Device, mask: bigint): boolean {
    if (!directSupported(mask)) return false;
    dev.dmaMask = mask;
    return true;
  }

  setCoherentMask(dev: Device, mask: bigint): boolean {
    if (!directSupported(mask)) return false;
    dev.coherentDmaMask = mask;
    return true;
  }

  iovaToPhys(dev: Device, addr: bigint): bigint {
    return this.pt.iovaToPhys(this.domain(dev), addr);
  }

  iovaPfnToPhysPfn(dev: Device, pfn: number): number {
    return this.pt.iovaPfnToPhysPfn(this.domain(dev), pfn);
  }

  presentLeaves(dev: Device): PresentLeaf[] {
    return this.pt.leaves(this.domain(dev));
  }

  domainPgtable(dev: Device): DomainPgtable {
    return this.domain(dev);
  }

  stats(): PathStats {
    return collectStats(this.machine, this.domains.values());
  }

  leaks(): LeakReport {
    return collectLeaks(this.machine, this.pt, [...this.domains.values()].map((d) => ({ iovad: d.iovad, fq: d.fq, tables: d })));
  }
}

/** dma_direct_supported on x86: 32-bit masks and wider always; else it must cover ZONE_DMA */
function directSupported(mask: bigint): boolean {
  return mask >= dmaBitMask(24);
}
