/**
 * Allowlist entries D4 and D5: the differences that come from where each release puts IOVAs.
 * Each is shown to recognise the divergence it was made for, what follows from it, and nothing
 * else. The numbers, worked out by hand from the rules:
 *
 * - D4. A 32-bit device; below 4 GiB only [0xffc00000, 0xffe03000) (515 pages) and the first MiB
 *   are free. map_page of 0x203000 bytes = 515 pages. 5.10's intel_alloc_iova rounds to 1024
 *   pages, which need the whole 1024-aligned block 0xffc00..0xfffff: the map fails ("Allocating
 *   1024-page iova failed"). 6.1's alloc_iova_fast rounds only below 32 pages: 515 pages aligned
 *   to 1024 fit at 0xffc00000.
 * - D5. An untrusted device maps 1 byte (bounced: one page at 0xfffff000, 32-bit first), then a
 *   page-aligned 1023-page buffer (mapped directly). 5.10 rounds to 1024 pages, aligned below
 *   0xfffff000: 0xff800000, so the page after the buffer (0xffbff000) is the unmapped tail of its
 *   own allocation. 6.1 allocates 1023 pages at the 1024-aligned 0xffc00000, ending right below
 *   the bounce mapping. A 1-byte read at offset 0x3ff000 faults 0x06 on 5.10 and reads the
 *   bounce slot's zeroed padding on 6.1.
 */
import { describe, expect, it } from 'vitest';
import { allowlisted, type AllowContext } from '../../harness/check/allowlist.js';
import type { Divergence } from '../../harness/check/checker.js';
import { PathRunner } from '../../harness/run/path-runner.js';
import { createPath } from '../../harness/run/paths.js';
import { failing, runScenario } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';

const DEV32 = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 32, coherentMask: 32 };

/** Free below 4 GiB: the first MiB (ignored: too small) and [0xffc00000, 0xffe03000) only. */
function tightScenario(extraSteps: unknown[] = []): unknown {
  return {
    format: 'dmadiff-scenario/1',
    platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ['2M', '1G'], strict: true, forcedac: false, cpus: 1 },
    devices: [DEV32],
    reserved: [
      { start: '0x100000', end: '0xffbfffff' },
      { start: '0xffe03000', end: '0xffffffff' },
    ],
    steps: [{ op: 'map_page', dev: 'dev', phys: '0x20000000', size: 0x203000, dir: 'to_device', as: 'big' }, ...extraSteps],
  };
}

describe('D4: the legacy path runs out of IOVA space where the generic path does not', () => {
  it('5.10 fails the 515-page map (rounded to 1024), 6.1 places it at 0xffc00000: allowlisted D4', () => {
    const doc = runScenario(parseScenario(tightScenario()));
    expect(doc.paths['legacy-intel'].steps[0]).toEqual({ ok: false });
    expect(doc.paths['dma-iommu'].steps[0]).toEqual({ ok: true, dma: '0xffc00000' });
    expect(doc.paths['legacy-intel'].log).toContain('dmadiff 0000:00:02.0: DMAR: Allocating 1024-page iova failed');
    const outcome = doc.divergences.filter((d) => d.kind === 'outcome');
    expect(outcome).toHaveLength(1);
    expect(outcome[0]!.allowlisted).toBe('D4');
    // the 515 pages only the generic path maps are reachable there: the same difference
    const reach = doc.divergences.filter((d) => d.kind === 'reachable');
    expect(reach).toHaveLength(1);
    expect(reach[0]!.extraGenericPfns).toHaveLength(515);
    expect(reach[0]!.allowlisted).toBe('D4');
    expect(failing(doc, false)).toEqual([]);
  });

  it('what follows from that one mapping (its accesses and its unmap) is D4 too', () => {
    const doc = runScenario(parseScenario(tightScenario([{ op: 'dma_read', map: 'big', offset: 0, len: 8 }, { op: 'unmap', map: 'big' }])));
    const later = doc.divergences.filter((d) => d.step > 0 && d.kind !== 'trace');
    // the read of a buffer the legacy path never mapped is an exposure probe there; the unmap
    // succeeds only on the generic path; afterwards both reach the same pages again
    expect(later.map((d) => [d.step, d.kind, d.allowlisted])).toEqual([
      [1, 'exposure', 'D4'],
      [2, 'outcome', 'D4'],
    ]);
    expect(failing(doc, false)).toEqual([]);
  });

  it('does not recognise the reverse (generic fails where legacy maps)', () => {
    const s = parseScenario(tightScenario());
    const lr = new PathRunner(createPath('legacy-intel', s), s);
    const gr = new PathRunner(createPath('dma-iommu', s), s);
    lr.run(0, s.steps[0]!);
    gr.run(0, s.steps[0]!);
    // swap the paths' mapping tables: now the legacy one succeeded and the generic one failed
    const ctx: AllowContext = { legacy: gr.mappings, generic: lr.mappings };
    const d: Divergence = { step: 0, kind: 'outcome', detail: 'hand-made', legacy: { ok: true }, generic: { ok: false }, map: 'big' };
    expect(allowlisted(d, ctx)).toBeUndefined();
  });

  it('does not recognise a failure that was not an IOVA allocation failure', () => {
    const s = parseScenario(tightScenario());
    const lr = new PathRunner(createPath('legacy-intel', s), s);
    const gr = new PathRunner(createPath('dma-iommu', s), s);
    lr.run(0, s.steps[0]!);
    gr.run(0, s.steps[0]!);
    lr.mappings.get('big')!.iovaFailed = false;
    const d: Divergence = { step: 0, kind: 'outcome', detail: 'hand-made', legacy: { ok: false }, generic: { ok: true }, map: 'big' };
    expect(allowlisted(d, { legacy: lr.mappings, generic: gr.mappings })).toBeUndefined();
  });
});

const D5_SCENARIO = {
  format: 'dmadiff-scenario/1',
  platform: { agaw: 39, cachingMode: false, zlr: false, superpages: ['2M'], strict: true, forcedac: false, cpus: 1 },
  devices: [
    { id: 'dev0', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 32, coherentMask: 32 },
    { id: 'dev1', bdf: '00:03.0', pci: true, untrusted: true, dmaMask: 32, coherentMask: 32 },
  ],
  reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
  steps: [
    { op: 'map_page', dev: 'dev1', phys: '0x1000001', size: 1, dir: 'to_device', as: 'm0' },
    { op: 'map_page', dev: 'dev1', phys: '0x20000000', size: 0x3ff000, dir: 'to_device', as: 'm1' },
    { op: 'dma_read', map: 'm1', offset: 0x3ff000, len: 1 },
  ],
};

describe("D5: a probe past a buffer reaches the device's next mapping on one path, unused IOVA on the other", () => {
  it('5.10 faults at 0xffbff000, 6.1 reads the bounce slot at 0xfffff000: allowlisted D5', () => {
    const doc = runScenario(parseScenario(D5_SCENARIO));
    expect(doc.paths['legacy-intel'].steps[1]).toEqual({ ok: true, dma: '0xff800000' });
    expect(doc.paths['dma-iommu'].steps[1]).toEqual({ ok: true, dma: '0xffc00000' });
    expect(doc.paths['legacy-intel'].steps[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xffbff000' } });
    expect(doc.paths['dma-iommu'].steps[2]).toEqual({ ok: true, data: '00' });
    const probe = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(probe).toHaveLength(1);
    expect(probe[0]!.allowlisted).toBe('D5');
    expect(failing(doc, false)).toEqual([]);
  });

  it('does not recognise the same probe once the other mapping is gone (nothing live is reached)', () => {
    const s = parseScenario(D5_SCENARIO);
    const doc = runScenario(s);
    const d = doc.divergences.find((x) => x.kind === 'exposure')!;
    const lr = new PathRunner(createPath('legacy-intel', s), s);
    const gr = new PathRunner(createPath('dma-iommu', s), s);
    s.steps.forEach((st, i) => {
      lr.run(i, st);
      gr.run(i, st);
    });
    expect(allowlisted(d, { legacy: lr.mappings, generic: gr.mappings })).toBe('D5');
    gr.mappings.get('m0')!.live = false;
    expect(allowlisted(d, { legacy: lr.mappings, generic: gr.mappings })).toBeUndefined();
  });

  it('does not recognise a difference in bytes (both paths reach something, differently)', () => {
    const d: Divergence = {
      step: 2,
      kind: 'exposure',
      detail: 'hand-made',
      legacy: { ok: true, data: '01' },
      generic: { ok: true, data: '00' },
      map: 'm1',
      probe: { legacy: [{ iova: 0xffbff000n, len: 1 }], generic: [{ iova: 0xfffff000n, len: 1 }] },
    };
    const s = parseScenario(D5_SCENARIO);
    const gr = new PathRunner(createPath('dma-iommu', s), s);
    const lr = new PathRunner(createPath('legacy-intel', s), s);
    s.steps.forEach((st, i) => {
      lr.run(i, st);
      gr.run(i, st);
    });
    expect(allowlisted(d, { legacy: lr.mappings, generic: gr.mappings })).toBeUndefined();
  });
});

describe('D5 the other way round: 5.10 reaches the next mapping where 6.1 left the IOVA unused', () => {
  // A non-PCI device: 5.10 tries below 4 GiB first for every device, 6.1 only for PCI ones.
  // The coherent buffer (5000 bytes, 32-bit coherent mask) gets 0xffffe000 on both. The list
  // (36-bit mask) gets 0xffffc000 on 5.10 (below 4 GiB, right under the buffer: 2 pages, the
  // second at 0xffffd000) and the top of 2^36 on 6.1. A 2-byte read starting 1 byte before the
  // coherent buffer reads the list's last page on 5.10 and faults (0x06) on 6.1.
  it('is recognised, and the read spans two mappings on 5.10', () => {
    const doc = runScenario(
      parseScenario({
        format: 'dmadiff-scenario/1',
        platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ['2M', '1G'], strict: true, forcedac: false, cpus: 1 },
        devices: [{ id: 'd', bdf: '00:02.0', pci: false, untrusted: false, dmaMask: 36, coherentMask: 32 }],
        reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
        steps: [
          { op: 'alloc_coherent', dev: 'd', size: 5000, as: 'c0' },
          { op: 'map_sg', dev: 'd', dir: 'to_device', as: 's1', sg: [{ phys: '0x1000000', length: 1024 }, { phys: '0x1000400', length: 1024 }] },
          { op: 'dma_read', map: 'c0', offset: -1, len: 2 },
        ],
      }),
    );
    expect(doc.paths['legacy-intel'].steps[1]!.segments).toEqual([
      { dma: '0xffffc000', len: 1024 },
      { dma: '0xffffd400', len: 1024 },
    ]);
    expect(doc.paths['legacy-intel'].steps[2]!.ok).toBe(true);
    expect(doc.paths['dma-iommu'].steps[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xffffd000' } });
    const probe = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(probe.map((d) => d.allowlisted)).toEqual(['D5']);
    expect(failing(doc, false)).toEqual([]);
  });
});

describe('pads and a legacy-only allocation failure together (D3+D4)', () => {
  // Found by the search (tight32, seed 777). Boundary 0x3fff: the 1-byte entry in page 0x1001000
  // is padded by 3 pages (0x1002000..0x1004fff) so the 64 KiB entry starts on a boundary (D3).
  // Then the 515-page map fails on 5.10 (rounded to 1024, which no longer fits) and succeeds on
  // 6.1 (D4). The reachable difference after step 1 holds both kinds of page; neither entry
  // alone accounts for it, both together do.
  it('is recognised as D3+D4 and fails nothing', () => {
    const doc = runScenario(
      parseScenario({
        format: 'dmadiff-scenario/1',
        platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ['2M', '1G'], strict: true, forcedac: false, cpus: 1 },
        devices: [{ ...DEV32, segBoundaryMask: '0x3fff' }],
        reserved: [
          { start: '0xfee00000', end: '0xfeefffff' },
          { start: '0x100000', end: '0xffbfffff' },
        ],
        steps: [
          { op: 'map_sg', dev: 'dev', dir: 'to_device', as: 's0', sg: [{ phys: '0x1001000', length: 1 }, { phys: '0x1020000', length: 65536 }] },
          { op: 'map_page', dev: 'dev', phys: '0x20000000', size: 0x203000, dir: 'to_device', as: 'm1' },
        ],
      }),
    );
    const reach = doc.divergences.filter((d) => d.kind === 'reachable');
    expect(reach.map((d) => [d.step, d.allowlisted])).toEqual([
      [0, 'D3'],
      [1, 'D3+D4'],
    ]);
    expect(reach[1]!.extraGenericPfns).toHaveLength(3 + 515);
    expect(failing(doc, false)).toEqual([]);
  });
});
