/**
 * D6: a probe past a buffer that both paths complete, each reading a different live mapping of
 * the same device. The case is the one `npm run nightly` found on caching-mode (fixture
 * nightly-exposure-caching-mode.scenario.json, shrunk to five steps): a non-PCI device with a
 * 39-bit streaming and a 32-bit coherent mask. 5.10's intel_alloc_iova tries below 4 GiB first
 * for every device, 6.1's iommu_dma_alloc_iova only when dev_is_pci, so the two lists land at
 * 0xffffc000/0xffffa000 on 5.10 and at the top of the 39-bit space on 6.1; the second coherent
 * buffer then sits at 0xffff9000 (5.10) and 0xffffe000 (6.1), and the word after it is the list
 * s2's first page on 5.10 (phys 0x1000000, pattern bytes 00 00 00 01) and the zeroed coherent
 * page c0 on 6.1. Both pages are the device's own live mappings: placement, not exposure.
 * The negative cases keep the same shape and must not be recognised.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { failing } from '../../harness/run/runner.js';
import { runJson as run } from './helpers.js';

const NIGHTLY = JSON.parse(readFileSync(new URL('../fixtures/nightly-exposure-caching-mode.scenario.json', import.meta.url), 'utf8')) as Record<string, unknown>;

const PLATFORM = { agaw: 48, cachingMode: false, zlr: true, superpages: [], strict: true, forcedac: false, cpus: 1 };
const reserved = [{ start: '0xfee00000', end: '0xfeefffff' }];

describe('D6: both paths read another live mapping of the device past a buffer', () => {
  it('the nightly case: legacy reads 00000001 from s2, generic 00000000 from c0; recognised as D6', () => {
    const doc = run(NIGHTLY);
    expect(doc.paths['legacy-intel'].steps[4]).toEqual({ ok: true, data: '00000001' });
    expect(doc.paths['dma-iommu'].steps[4]).toEqual({ ok: true, data: '00000000' });
    const e = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(e.map((d) => [d.step, d.allowlisted])).toEqual([[4, 'D6']]);
    expect(failing(doc)).toEqual([]);
  });

  it('not a stale translation: with noIotlbSync the generic read of a reused IOVA goes to the old page, which D6 refuses', () => {
    const uaf = {
      format: 'dmadiff-scenario/1',
      platform: PLATFORM,
      devices: [{ id: 'nic', bdf: '00:03.0', pci: true, untrusted: false, dmaMask: 64, coherentMask: 32 }],
      reserved,
      steps: [
        { op: 'map_page', dev: 'nic', phys: '0x1000000', size: 4096, dir: 'to_device', as: 'm1' },
        { op: 'dma_read', map: 'm1', offset: 0, len: 4 },
        { op: 'unmap', map: 'm1' },
        { op: 'map_page', dev: 'nic', phys: '0x2000000', size: 4096, dir: 'to_device', as: 'm2' },
        { op: 'dma_read', map: 'm1', offset: 0, len: 4 },
      ],
    };
    expect(failing(run(uaf))).toEqual([]);
    const broken = run(uaf, { noIotlbSync: true });
    const e = broken.divergences.filter((d) => d.step === 4 && d.kind === 'exposure');
    expect(e).toHaveLength(1);
    expect(e[0]!.allowlisted).toBeUndefined();
  });

  it("not the mapping's own padding: with noBouncePaddingZero a read past a bounced buffer into its own slot page is refused", () => {
    const pad = {
      format: 'dmadiff-scenario/1',
      platform: PLATFORM,
      devices: [{ id: 'tb', bdf: '00:04.0', pci: true, untrusted: true, dmaMask: 64, coherentMask: 32 }],
      reserved,
      steps: [
        { op: 'map_page', dev: 'tb', phys: '0x1000000', size: 4096, dir: 'to_device', as: 'm0' },
        { op: 'map_page', dev: 'tb', phys: '0x2000000', size: 100, dir: 'to_device', as: 'm1' },
        { op: 'dma_read', map: 'm1', offset: 96, len: 4100 },
      ],
    };
    expect(failing(run(pad))).toEqual([]);
    const e = run(pad, { noBouncePaddingZero: true }).divergences.filter((d) => d.step === 2 && d.kind === 'exposure');
    expect(e).toHaveLength(1);
    expect(e[0]!.allowlisted).toBeUndefined();
  });
});
