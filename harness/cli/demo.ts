/**
 * A walk through the simulated VT-d unit a reader can follow: attach a device, map a page,
 * let the device read through the IOMMU, fault on a write, unmap without invalidating (the
 * stale IOTLB entry still translates), invalidate, fault again.
 */
import { vtdConfig } from '../../vtd/caps.js';
import { formatBdf, parseBdf } from '../../vtd/entries.js';
import { dmarFaultLine } from '../../vtd/fault.js';
import { VtdHardware } from '../../vtd/hardware.js';
import { type DmaFault } from '../../vtd/dma.js';
import { TableProgrammer } from '../../testbench/vtd-program.js';
import { DMA_PTE_READ } from '../../vtd/regs.js';
import { qiTypeName } from '../../vtd/qi-desc.js';
import { iovaPfn } from '../../kernel/bits.js';
import { must } from '../../kernel/assert.js';

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

function bytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

export function runDemo(out: (line: string) => void): void {
  const hw = new VtdHardware(vtdConfig());
  out(`VT-d unit as QEMU 7.2 reports it: cap ${hex(hw.cap)} ecap ${hex(hw.ecap)}`);
  out(`  ${hw.config.agaw}-bit, caching mode ${hw.caps.cm ? 'on' : 'off'}, PSI up to AM ${hw.caps.mamv}, superpages ${hw.config.superpages.join('+')}`);
  const prog = new TableProgrammer(hw);
  const sid = must(parseBdf('00:02.0'), 'the demo device 00:02.0 to parse');
  const dom = prog.newDomain(4, hw.config.agaw);
  prog.attach(sid, dom);
  out(`attach ${formatBdf(sid)} to domain id ${dom.did}: root table at ${hex(hw.rootTableAddress)}, ${dom.levels}-level second-level tables`);

  const iova = 0xfffff000n;
  const phys = 0x3400000;
  prog.map(dom, iovaPfn(iova), phys / 4096, 1, DMA_PTE_READ);
  out(`map iova ${hex(iova)} -> phys ${hex(phys)} read-only (a DMA_TO_DEVICE buffer)`);

  const showFault = (f: DmaFault): void => {
    const rec = { sid: f.sid, addr: f.addr, isRead: f.isRead, reason: f.reason };
    out(`  fault, as 5.10 prints it: DMAR: ${dmarFaultLine(rec, '5.10')}`);
    out(`  fault, as 6.1 prints it:  DMAR: ${dmarFaultLine(rec, '6.1')}`);
    for (let i = 0; i < hw.faultRecordCount; i++) hw.clearFaultRecord(i);
  };

  let r = hw.dmaRead(sid, iova + 0x100n, 16);
  out(`device reads 16 bytes at ${hex(iova + 0x100n)}: ${bytes(r.data)}`);
  out(`  (each 8-byte word at physical p reads 0xa5<<56 | p: these are the words at ${hex(phys + 0x100)} and ${hex(phys + 0x108)})`);
  const w = hw.dmaWrite(sid, iova, new Uint8Array(8).fill(0x5a));
  out(`device writes 8 bytes at ${hex(iova)}: ${w.fault ? 'refused' : 'done'}`);
  if (w.fault) showFault(w.fault);

  prog.unmap(dom, iovaPfn(iova), 1);
  r = hw.dmaRead(sid, iova, 8);
  out(`PTE cleared, no invalidation yet: device reads ${bytes(r.data)} -- the IOTLB still holds the translation`);

  prog.flushIotlbPages(dom.did, iovaPfn(iova), 0);
  const d = must(hw.qiLog.at(hw.qiLog.length - 2), 'the page-selective descriptor before the wait in the QI log');
  out(`page-selective invalidation queued: ${qiTypeName(d.qw0)} ${hex(d.qw0)} ${hex(d.qw1)} (DID ${dom.did}, AM 0), then a wait descriptor`);
  r = hw.dmaRead(sid, iova, 8);
  out(`device reads at ${hex(iova)} again: ${r.fault ? 'refused' : bytes(r.data)}`);
  if (r.fault) showFault(r.fault);
  const c = hw.counters;
  out(`counters: ${c.iotlbHits} IOTLB hits, ${c.iotlbMisses} misses, ${c.pageWalks} page walks, ${c.qiDescriptors} descriptors`);
}
