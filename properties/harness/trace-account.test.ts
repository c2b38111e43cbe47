/**
 * Trace accounting (harness/check/trace-account.ts, checker.ts TraceWatch): each path's map/unmap
 * events against its own page tables, and the two paths' events translated into one vocabulary
 * ("p:" buffer page, "b:" bounce of an original address, "c:" coherent page) and compared.
 *
 * Expected targets are written out by hand from the scenario's addresses.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { failing, runScenario, type ResultDoc } from '../../harness/run/runner.js';
import { createPath } from '../../harness/run/paths.js';
import { PathRunner } from '../../harness/run/path-runner.js';
import { ReachTracker } from '../../harness/check/reach-tracker.js';
import { TraceAccountant } from '../../harness/check/trace-account.js';
import { TargetNames } from '../../harness/check/trace-targets.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { DEV, DEV_NAME, TmpFiles, cli, loadFixture, runJson as run, scenarioJson } from './helpers.js';

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

const traceOf = (doc: ResultDoc): ResultDoc['divergences'] => doc.divergences.filter((d) => d.kind === 'trace');

/** an untrusted device's sub-page buffer: bounced on both paths */
const BOUNCED = scenarioJson({
  devices: [{ ...DEV, untrusted: true }],
  steps: [
    { op: 'map_page', dev: 'dev', phys: '0x3402100', size: 0x200, dir: 'to_device', as: 'm' },
    { op: 'dma_read', map: 'm', offset: 0, len: 0x200 },
    { op: 'unmap', map: 'm' },
  ],
});

/** a trusted page and a list: map_single/map_sg against iommu:map */
const TRUSTED = scenarioJson({
  steps: [
    { op: 'map_page', dev: 'dev', phys: '0x3403ff0', size: 0x20, dir: 'bidirectional', as: 'm' },
    {
      op: 'map_sg',
      dev: 'dev',
      dir: 'to_device',
      as: 's',
      sg: [
        { phys: '0x3410000', length: 0x1000 },
        { phys: '0x3420100', length: 0x200 },
      ],
    },
    { op: 'alloc_coherent', dev: 'dev', size: 0x3000, as: 'c' },
    { op: 'unmap', map: 'm' },
    { op: 'unmap', map: 's' },
    { op: 'free_coherent', map: 'c' },
  ],
});

describe('the two vocabularies translate to the same targets', () => {
  it("a bounced buffer: 5.10's bounce_map_single names the caller's buffer, 6.1's map the slot -- both account as the buffer, bounced", () => {
    const doc = run(BOUNCED);
    const l = doc.paths['legacy-intel'].trace.filter((t) => t.step === 0);
    expect(l.map((t) => t.event)).toEqual(['bounce_map_single']);
    expect(l[0]!.text).toMatch(new RegExp(`^dev=${DEV_NAME} dev_addr=0x[0-9a-f]+ phys_addr=0x3402100 size=512$`));
    const g = doc.paths['dma-iommu'].trace.filter((t) => t.step === 0 && t.event === 'map');
    expect(g).toHaveLength(1);
    // the slot, in the swiotlb pool, not the caller's page
    expect(Number(/paddr=(0x[0-9a-f]+)/.exec(g[0]!.text)![1])).toBeGreaterThanOrEqual(0x7beb3000);
    expect(traceOf(doc)).toEqual([]);
    expect(failing(doc)).toEqual([]);
  });

  it('trusted single, list and coherent buffers account identically at every step', () => {
    const doc = run(TRUSTED);
    expect(traceOf(doc)).toEqual([]);
  });

  it("the real kernels' strict-main run: every trace difference is the 6.1 boundary pad (D3)", () => {
    const doc = runScenario(parseScenario(loadFixture('strict-main').scenario));
    const t = traceOf(doc);
    for (const d of t) expect(d.allowlisted, d.detail).toBe('D3');
  });

  it('a boundary pad: 6.1 maps and unmaps three pad pages after entry 0, which D3 recognises', () => {
    // boundary 0x3fff: entry 0 takes [0, 0x1000); entry 1 (4 pages) would cross 0x4000, so
    // entry 0 is padded by 0x3000: the physical pages 0x3401000..0x3403000 after it are mapped
    const doc = run(
      scenarioJson({
        devices: [{ ...DEV, segBoundaryMask: '0x3fff' }],
        steps: [
          {
            op: 'map_sg',
            dev: 'dev',
            dir: 'to_device',
            as: 's',
            sg: [
              { phys: '0x3400000', length: 0x1000 },
              { phys: '0x3480000', length: 0x4000 },
            ],
          },
          { op: 'unmap', map: 's' },
        ],
      }),
    );
    const t = traceOf(doc);
    expect(t.map((d) => d.step)).toEqual([0, 1]);
    const pads = ['0x3401000', '0x3402000', '0x3403000'].map((p) => `${DEV_NAME} p:${p}`);
    expect(t[0]!.onlyLegacy).toEqual([]);
    expect(t[0]!.onlyGeneric).toEqual(pads.map((p) => `map ${p}`));
    expect(t[1]!.onlyGeneric).toEqual(pads.map((p) => `unmap ${p}`));
    for (const d of t) expect(d.allowlisted).toBe('D3');
    expect(failing(doc)).toEqual([]);
  });
});

describe('a path whose events do not account for its own mappings fails the gate', () => {
  it('noMapTraceAtomic: 6.1 maps a page with no iommu:map -- the path is named, nothing allowlists it', () => {
    const doc = run(TRUSTED, { noMapTraceAtomic: true });
    const own = traceOf(doc).filter((d) => d.path === 'dma-iommu');
    expect(own.length).toBeGreaterThan(0);
    expect(own[0]!.step).toBe(0);
    expect(own[0]!.detail).toMatch(/mapped with no map event/);
    expect(own.every((d) => d.allowlisted === undefined)).toBe(true);
    // and the comparison sees the map that legacy traced and generic did not
    const cross = traceOf(doc).filter((d) => d.path === undefined && d.step === 0);
    expect(cross[0]!.onlyLegacy).toEqual([`map ${DEV_NAME} p:0x3403000`, `map ${DEV_NAME} p:0x3404000`]);
    expect(failing(doc).length).toBeGreaterThan(0);
  });

  it('bounceTracesOriginal: a 6.1 map event for the caller page it did not map is an event for a range not mapped', () => {
    const doc = run(BOUNCED, { bounceTracesOriginal: true });
    const own = traceOf(doc).filter((d) => d.path === 'dma-iommu');
    expect(own.length).toBeGreaterThan(0);
    expect(own[0]!.step).toBe(0);
    expect(failing(doc).some((d) => d.kind === 'trace')).toBe(true);
  });

  it('--no-trace: the same divergence is reported and does not fail', async () => {
    const file = tmp.write(TRUSTED);
    expect((await cli(['scenario', file])).code).toBe(0);
    const doc = run(TRUSTED, { noMapTraceAtomic: true });
    expect(failing(doc, false).filter((d) => d.kind === 'trace')).toEqual([]);
    expect(failing(doc, true).filter((d) => d.kind === 'trace').length).toBeGreaterThan(0);
  });
});

describe('what a coherent page stands for', () => {
  it('the live buffer holding it, else the freed one that held it, else none -- current after every alloc and free', () => {
    const s = parseScenario(
      scenarioJson({
        steps: [
          { op: 'alloc_coherent', dev: 'dev', size: 0x2000, as: 'a' },
          { op: 'free_coherent', map: 'a' },
          { op: 'alloc_coherent', dev: 'dev', size: 0x1000, as: 'b' },
          { op: 'free_coherent', map: 'b' },
        ],
      }),
    );
    const r = new PathRunner(createPath('dma-iommu', s), s);
    const acct = new TraceAccountant(r, new ReachTracker(r.model), new TargetNames());
    const at = (pfn: number): string => acct.targetText(acct.targets.physTarget(pfn));
    r.run(0, s.steps[0]!);
    const a = [...r.mappings.get('a')!.coherent!.pfns];
    expect(a).toHaveLength(2);
    expect(a.map(at)).toEqual(['c:a:0', 'c:a:1']);
    r.run(1, s.steps[1]!);
    // freed, and nothing newer holds its pages
    expect(a.map(at)).toEqual(['c:a:0', 'c:a:1']);
    r.run(2, s.steps[2]!);
    const b = r.mappings.get('b')!.coherent!.pfns[0]!;
    // the page allocator hands a freed page out again: the newer, live buffer is what it stands for
    expect(a).toContain(b);
    expect(a.map(at)).toEqual(a.map((p) => (p === b ? 'c:b:0' : `c:a:${a.indexOf(p)}`)));
    r.run(3, s.steps[3]!);
    // both freed: the buffer made first is named first
    expect(a.map(at)).toEqual(['c:a:0', 'c:a:1']);
    // a coherent-region page no buffer ever held
    const never = Math.max(...a) + 64;
    expect(at(never)).toBe(`c:?:0x${(never * 4096).toString(16)}`);
  });
});
