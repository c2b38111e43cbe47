/**
 * The observation model's trace accounting (observe.ts traceAccount, checker.ts checkTrace) and
 * reachable-set difference: what a step's trace events say was mapped, in terms both kernels'
 * vocabularies share. 5.10's map_single prints size = npages << 12 from the page of phys_addr;
 * its bounce events print the caller's address and size; 6.1's iommu:map prints the physical
 * range actually mapped (a bounce slot for a bounced buffer).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkTrace } from '../../harness/checker.js';
import { diffReachable, traceAccount, type Reachable } from '../../harness/observe.js';
import { failing, runScenario } from '../../harness/runner.js';
import { parseScenario } from '../../harness/validation.js';
import type { TraceEvent } from '../../kernel/trace.js';
import { DEV, DEV_NAME, TmpFiles, cli, cliJson, loadFixture, scenarioJson } from './helpers.js';

function ev(event: string, text: string, step = 0): TraceEvent {
  return { step, cpu: 0, tsNs: 0, system: event === 'map' || event === 'unmap' ? 'iommu' : 'intel_iommu', event, text };
}

/** 6.1 include/trace/events/iommu.h formats, written out here */
function hx16(v: number): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}
function iommuMap(iova: number, paddr: number, size: number): TraceEvent {
  return ev('map', `IOMMU: iova=${hx16(iova)} - ${hx16(iova + size)} paddr=${hx16(paddr)} size=${size}`);
}
function iommuUnmap(iova: number, size: number, unmapped: number): TraceEvent {
  return ev('unmap', `IOMMU: iova=${hx16(iova)} - ${hx16(iova + size)} size=${size} unmapped_size=${unmapped}`);
}

/** the swiotlb pool as the real 6.1 guest reported it: [mem 0x7beb3000-0x7feb3000] */
const SWIOTLB_START = 0x7beb3000;
const SWIOTLB_END = 0x7feb3000;

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

describe('traceAccount', () => {
  it('the legacy map_single of 512 bytes at 0x3402100 (size=4096: one page) accounts for the page 0x3402000 only', () => {
    const line = 'dev=0000:00:02.0 dev_addr=0xffffd100 phys_addr=0x3402100 size=4096';
    // the very line the real 5.10 printed for strict-main step 3
    expect(loadFixture('strict-main').trace!.events['legacy-intel']!.some((e) => e.event === 'map_single' && e.text === line)).toBe(true);
    expect(traceAccount([ev('map_single', line)])).toEqual({ mapped: ['0x3402000'], unmappedPages: 0 });
    // and 6.1's event for the same buffer says the same
    expect(traceAccount([iommuMap(0xffffd000, 0x3402000, 4096)])).toEqual({ mapped: ['0x3402000'], unmappedPages: 0 });
  });

  it('a map_single crossing a page (32 bytes at 0x3403ff0, size=8192) accounts for both pages', () => {
    expect(traceAccount([ev('map_single', 'dev=0000:00:02.0 dev_addr=0xffffaff0 phys_addr=0x3403ff0 size=8192')]).mapped).toEqual(['0x3403000', '0x3404000']);
  });

  it('unmaps count IOVA pages: unmap_single by the pages [dev_addr, dev_addr + size) touches, unmap by unmapped_size', () => {
    expect(traceAccount([ev('unmap_single', 'dev=0000:00:02.0 dev_addr=0xffffaff0 size=32')])).toEqual({ mapped: [], unmappedPages: 2 });
    expect(traceAccount([ev('unmap_single', 'dev=0000:00:02.0 dev_addr=0xfffff000 size=4096')]).unmappedPages).toBe(1);
    expect(traceAccount([iommuUnmap(0xffffa000, 8192, 8192)]).unmappedPages).toBe(2);
    // 5.10's unmap_sg repeats the unmap_single before it
    const sgUnmap = [ev('unmap_single', 'dev=0000:00:02.0 dev_addr=0xffff4000 size=12288'), ev('unmap_sg', 'dev=0000:00:02.0 dev_addr=0xffff4000 size=12288')];
    expect(traceAccount(sgUnmap).unmappedPages).toBe(3);
  });

  it("a bounced buffer: 5.10's bounce_map_single names the caller's page, 6.1's map the slot (a pooled page)", () => {
    expect(traceAccount([ev('bounce_map_single', 'dev=0000:00:02.0 dev_addr=0xfffff000 phys_addr=0x3402100 size=512')]).mapped).toEqual(['0x3402000']);
    expect(traceAccount([iommuMap(0xfffff000, SWIOTLB_START, 4096)]).mapped).toEqual(['1 swiotlb page(s)']);
  });

  it("an untrusted list of whole pages (never bounced): 5.10's bounce_map_sg repeats the bounce_map_single before it, so each page counts once", () => {
    // bounce_map_sg calls bounce_map_page (→ bounce_map_single, traced) per entry, then traces
    // bounce_map_sg for every entry: the same caller pages twice
    const legacy = [
      ev('bounce_map_single', 'dev=0000:00:02.0 dev_addr=0xffffc000 phys_addr=0x3400000 size=12288'),
      ev('bounce_map_single', 'dev=0000:00:02.0 dev_addr=0xffffa000 phys_addr=0x3480000 size=8192'),
      ev('bounce_map_sg', 'dev=0000:00:02.0 [1/2] dev_addr=0xffffc000 phys_addr=0x3400000 size=12288'),
      ev('bounce_map_sg', 'dev=0000:00:02.0 [2/2] dev_addr=0xffffa000 phys_addr=0x3480000 size=8192'),
    ];
    const generic = [iommuMap(0xffffc000, 0x3400000, 12288), iommuMap(0xffffa000, 0x3480000, 8192)];
    const want = ['0x3400000', '0x3401000', '0x3402000', '0x3480000', '0x3481000'];
    expect(traceAccount(generic).mapped).toEqual(want);
    expect(traceAccount(legacy).mapped).toEqual(want);
    expect(checkTrace(0, legacy, generic)).toEqual([]);
  });

  it("the real kernels' traces of strict-main (trusted, no pads, no bounce) account identically at every step", () => {
    const c = loadFixture('strict-main');
    const [from, to] = c.trace!.coversSteps;
    // the steps the recorded events belong to, from the replay (whose lines equal the recording: oracle.test.ts)
    const doc = runScenario(parseScenario(c.scenario));
    const byStep = (p: 'legacy-intel' | 'dma-iommu'): Map<number, TraceEvent[]> => {
      const rec = c.trace!.events[p]!;
      const steps = doc.paths[p].trace.filter((t) => t.step >= from && t.step < to);
      expect(steps.map((t) => t.text)).toEqual(rec.map((e) => e.text));
      const out = new Map<number, TraceEvent[]>();
      rec.forEach((e, k) => {
        const s = steps[k]!.step;
        out.set(s, [...(out.get(s) ?? []), ev(e.event, e.text, s)]);
      });
      return out;
    };
    const l = byStep('legacy-intel');
    const g = byStep('dma-iommu');
    const bad: string[] = [];
    for (let s = from; s < to; s++) {
      const ds = checkTrace(s, l.get(s) ?? [], g.get(s) ?? []);
      if (ds.length > 0) bad.push(`step ${s}: ${ds[0]!.detail}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('a trace divergence fails the gate only with --trace-parity', () => {
  // an untrusted device's sub-page buffer is bounced on both paths
  const json = scenarioJson({
    devices: [{ ...DEV, untrusted: true }],
    steps: [
      { op: 'map_page', dev: 'dev', phys: '0x3402100', size: 0x200, dir: 'to_device', as: 'm' },
      { op: 'dma_read', map: 'm', offset: 0, len: 0x200 },
      { op: 'unmap', map: 'm' },
    ],
  });

  it('legacy traces the original address (bounce_map_single), generic the slot (map): a "trace" divergence at the map', () => {
    const doc = runScenario(parseScenario(json));
    const l = doc.paths['legacy-intel'].trace.filter((t) => t.step === 0);
    const g = doc.paths['dma-iommu'].trace.filter((t) => t.step === 0);
    expect(l.map((t) => t.event)).toEqual(['bounce_map_single']);
    expect(l[0]!.text).toMatch(new RegExp(`^dev=${DEV_NAME} dev_addr=0x[0-9a-f]+ phys_addr=0x3402100 size=512$`));
    const maps = g.filter((t) => t.event === 'map');
    expect(maps).toHaveLength(1);
    const paddr = Number(/paddr=(0x[0-9a-f]+)/.exec(maps[0]!.text)![1]);
    expect(paddr).toBeGreaterThanOrEqual(SWIOTLB_START);
    expect(paddr).toBeLessThan(SWIOTLB_END);
    const trace = doc.divergences.filter((d) => d.kind === 'trace');
    expect(trace.map((d) => d.step)).toEqual([0]);
    expect(trace[0]!.allowlisted).toBeUndefined();
    expect(failing(doc, false)).toEqual([]);
    expect(failing(doc, true).map((d) => d.kind)).toEqual(['trace']);
  });

  it('the CLI exits 0 without --trace-parity and 1 with it', async () => {
    const file = tmp.write(json);
    expect((await cli(['scenario', file])).code).toBe(0);
    expect((await cli(['scenario', file, '--trace-parity'])).code).toBe(1);
    const r = await cliJson(file, '--trace-parity');
    expect(r.code).toBe(1);
    expect(r.doc.divergences.some((d) => d.kind === 'trace')).toBe(true);
  });

  it('an untrusted list of whole pages maps the same pages on both kernels: no trace divergence, exit 0 even with --trace-parity', async () => {
    const whole = scenarioJson({
      devices: [{ ...DEV, untrusted: true }],
      steps: [
        {
          op: 'map_sg',
          dev: 'dev',
          dir: 'to_device',
          as: 's',
          sg: [
            { phys: '0x3400000', length: 0x3000 },
            { phys: '0x3480000', length: 0x2000 },
          ],
        },
        { op: 'unmap', map: 's' },
      ],
    });
    const doc = runScenario(parseScenario(whole));
    expect(doc.divergences.filter((d) => d.kind === 'trace')).toEqual([]);
    expect((await cli(['scenario', tmp.write(whole), '--trace-parity'])).code).toBe(0);
  });
});

describe('diffReachable', () => {
  const R = (pages: Array<[number, number]>, pooled: Array<[string, number]> = []): Reachable => ({ pages: new Map(pages), pooled: new Map(pooled) });

  it('equal sets: no difference', () => {
    expect(diffReachable(R([[0x3400, 1]], [['swiotlb:3', 2]]), R([[0x3400, 1]], [['swiotlb:3', 2]]))).toBeNull();
  });

  it('pages by address and permission; only pages the second set reaches at all are "extra"', () => {
    const d = diffReachable(R([[0x3400, 1]]), R([
      [0x3400, 3],
      [0x3403, 1],
    ]))!;
    expect(d.onlyA).toEqual(['0x3400000:r']);
    expect(d.onlyB).toEqual(['0x3400000:rw', '0x3403000:r']);
    expect(d.extraBPfns).toEqual([0x3403]);
  });

  it('pooled pages by count only', () => {
    const d = diffReachable(R([], [['swiotlb:1', 2]]), R([], [['swiotlb:1', 1]]))!;
    expect(d.onlyA).toEqual(['1 swiotlb:1 page(s)']);
    expect(d.onlyB).toEqual([]);
    expect(d.extraBPfns).toEqual([]);
  });
});
