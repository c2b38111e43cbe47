/** Hardware figures: device translations per second with IOTLB hits and with misses. */
import { vtdConfig } from '../vtd/caps.js';
import { VtdHardware } from '../vtd/hardware.js';
import { TableProgrammer } from '../testbench/vtd-program.js';
import { DMA_PTE_READ, DMA_PTE_WRITE } from '../vtd/regs.js';
import { measure } from './timing.js';

function setup(iotlbEntries: number, agaw: 39 | 48 | 57): { hw: VtdHardware; pages: number } {
  const hw = new VtdHardware(vtdConfig({ iotlbEntries, agaw }));
  const prog = new TableProgrammer(hw);
  const dom = prog.newDomain(4, agaw);
  prog.attach(0x10, dom);
  const pages = 4096;
  prog.map(dom, 0x100000, 0x3400, pages, DMA_PTE_READ | DMA_PTE_WRITE);
  return { hw, pages };
}

export function benchVtd(): Record<string, number> {
  const hit = setup(8192, 48);
  const hitRate = measure(() => {
    for (let i = 0; i < 10000; i++) hit.hw.translate(0x10, 0x100000 + (i & 255), false);
    return 10000;
  });
  // a 1-entry IOTLB walked over 4096 pages: every translation misses and walks 4 levels
  const miss = setup(1, 48);
  const missRate = measure(() => {
    for (let i = 0; i < 10000; i++) miss.hw.translate(0x10, 0x100000 + (i % miss.pages), false);
    return 10000;
  });
  const miss57 = setup(1, 57);
  const miss57Rate = measure(() => {
    for (let i = 0; i < 10000; i++) miss57.hw.translate(0x10, 0x100000 + (i % miss57.pages), false);
    return 10000;
  });
  const dma = setup(8192, 48);
  const dmaRate = measure(() => {
    for (let i = 0; i < 100; i++) dma.hw.dmaRead(0x10, 0x100000000n + BigInt((i & 63) * 4096), 4096);
    return 100;
  });
  return {
    vtd_translations_per_sec_iotlb_hit: hitRate.opsPerSec,
    vtd_translations_per_sec_iotlb_miss_4level: missRate.opsPerSec,
    vtd_translations_per_sec_iotlb_miss_5level: miss57Rate.opsPerSec,
    vtd_dma_read_4k_per_sec: dmaRate.opsPerSec,
  };
}
