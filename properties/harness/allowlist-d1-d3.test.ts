/**
 * The models' one real, intended exposure difference -- 6.1's segment-boundary pad
 * (kernel-semantics 7.15b) -- on the unbroken models, and the allowlist entries D1, D2, D3, each
 * of which must recognise its divergence and nothing else. (The seeded bugs the checker must
 * catch are in seeded-bugs.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { ALLOWLIST, allowlisted, padPages, type AllowContext } from '../../harness/check/allowlist.js';
import type { Divergence } from '../../harness/check/checker.js';
import { PathRunner, type Mapping } from '../../harness/run/path-runner.js';
import { createPath } from '../../harness/run/paths.js';
import { failing } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { DEV, DEV_NAME, patternHex, runJson as run, scenarioJson, unallowlisted, type StepJson } from './helpers.js';

/**
 * A trusted device with a 16 KiB segment boundary maps [0x3000 bytes at A, 0x2000 bytes at B].
 * iommu_dma_map_sg: after entry 0, iova_len = 0x3000; for entry 1, pad_len = (0x3fff - 0x3000 + 1)
 * & 0x3fff = 0x1000, and 0x1000 < s_length - 1 = 0x1fff, so entry 0's length grows to 0x4000 and
 * iommu_map_sg maps A .. A+0x3fff: the page A+0x3000 after the buffer becomes reachable.
 * Legacy ignores the boundary and maps only the entries' pages.
 */
const A = 0x3400000;
const PAD_PAGE = A + 0x3000;
const padSg = [
  { phys: '0x3400000', length: 0x3000 },
  { phys: '0x3480000', length: 0x2000 },
];

function padScenario(untrusted: boolean, extra: StepJson[] = []): Record<string, unknown> {
  return scenarioJson({
    devices: [{ ...DEV, untrusted, segBoundaryMask: '0x3fff' }],
    steps: [{ op: 'map_sg', dev: 'dev', dir: 'to_device', sg: padSg, as: 's' }, { op: 'dma_read', map: 's', offset: 0, len: 0x5000 }, ...extra],
  });
}

/** the generic path's mappings after running the scenario's steps */
function genericMappings(json: Record<string, unknown>): Map<string, Mapping> {
  const s = parseScenario(json);
  const r = new PathRunner(createPath('dma-iommu', s), s);
  s.steps.forEach((st, i) => r.run(i, st));
  return r.mappings;
}

function reachableDiv(o: { pfns: number[]; onlyGeneric?: string[]; onlyLegacy?: string[]; device?: string }): Divergence {
  const onlyGeneric = o.onlyGeneric ?? o.pfns.map((p) => `0x${(p * 4096).toString(16)}:r`);
  return {
    step: 0,
    kind: 'reachable',
    detail: 'hand-made',
    device: o.device ?? DEV_NAME,
    onlyLegacy: o.onlyLegacy ?? [],
    onlyGeneric,
    extraGenericPfns: o.pfns,
    legacy: o.onlyLegacy ?? [],
    generic: onlyGeneric,
  };
}

describe('(f) the segment-boundary pad on the unbroken models', () => {
  const listBytes = patternHex(A, 0x3000) + patternHex(0x3480000, 0x2000);

  it('trusted: the generic device reaches the page after entry 0, a "reachable" divergence allowlisted as D3', () => {
    const doc = run(padScenario(false));
    for (const p of ['legacy-intel', 'dma-iommu'] as const) expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: listBytes });
    const reach = doc.divergences.filter((d) => d.kind === 'reachable');
    expect(reach).toHaveLength(1);
    expect(reach[0]).toMatchObject({ step: 0, device: DEV_NAME, onlyLegacy: [], extraGenericPfns: [PAD_PAGE / 4096], allowlisted: 'D3' });
    expect(reach[0]!.onlyGeneric).toHaveLength(1);
    expect(reach[0]!.onlyGeneric![0]!.startsWith(`0x${PAD_PAGE.toString(16)}:`)).toBe(true);
    expect(unallowlisted(doc)).toEqual([]);
    expect(failing(doc, false)).toEqual([]);
  });

  it('trusted: after the unmap the difference is gone (no new divergence)', () => {
    const doc = run(padScenario(false, [{ op: 'unmap', map: 's' }]));
    expect(doc.divergences.filter((d) => d.kind === 'reachable').map((d) => d.step)).toEqual([0]);
    expect(failing(doc, false)).toEqual([]);
  });

  it('a pad on a later entry: [0x1000 at A, 0x1000 at B, 0x3000 at C] pads B by 0x2000, also D3', () => {
    // iova_len 0x1000 then 0x2000; for entry 2 pad_len = 0x2000 < 0x3000 - 1, so B's length
    // grows by 0x2000 and B+0x1000, B+0x2000 are mapped (entry 1's pad 0x3000 is not < 0x1000 - 1)
    const B = 0x3480000;
    const json = scenarioJson({
      devices: [{ ...DEV, segBoundaryMask: '0x3fff' }],
      steps: [
        {
          op: 'map_sg',
          dev: 'dev',
          dir: 'bidirectional',
          as: 's',
          sg: [
            { phys: '0x3400000', length: 0x1000 },
            { phys: '0x3480000', length: 0x1000 },
            { phys: '0x3500000', length: 0x3000 },
          ],
        },
      ],
    });
    const doc = run(json);
    const reach = doc.divergences.filter((d) => d.kind === 'reachable');
    expect(reach).toHaveLength(1);
    expect([...reach[0]!.extraGenericPfns!].sort((x, y) => x - y)).toEqual([(B + 0x1000) / 4096, (B + 0x2000) / 4096]);
    expect(reach[0]!.allowlisted).toBe('D3');
    expect(failing(doc, false)).toEqual([]);
  });

  it('untrusted: the list is bounced entry by entry, no pad: no D3 and no failing divergence', () => {
    const doc = run(padScenario(true, [{ op: 'unmap', map: 's' }]));
    for (const p of ['legacy-intel', 'dma-iommu'] as const) expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: listBytes });
    expect(doc.divergences.filter((d) => d.kind === 'reachable')).toEqual([]);
    expect(doc.divergences.some((d) => d.allowlisted === 'D3')).toBe(false);
    expect(failing(doc, false)).toEqual([]);
  });
});

describe('padPages (the pages the allowlist attributes to pads), against the kernel rule', () => {
  it('the two-entry list under 0x3fff pads exactly A+0x3000', () => {
    const m = genericMappings(padScenario(false)).get('s')!;
    expect([...padPages(m.entries!, m.segBoundaryMask!)]).toEqual([PAD_PAGE / 4096]);
  });

  it('under the default 4 GiB boundary the same list has no pad', () => {
    const json = scenarioJson({ steps: [{ op: 'map_sg', dev: 'dev', dir: 'to_device', sg: padSg, as: 's' }] });
    const m = genericMappings(json).get('s')!;
    expect([...padPages(m.entries!, m.segBoundaryMask!)]).toEqual([]);
  });
});

describe('the D3 predicate is narrow', () => {
  const trusted = genericMappings(padScenario(false));
  const ctx: AllowContext = { legacy: new Map(), generic: trusted };
  const padPfn = PAD_PAGE / 4096;

  it('recognises the pad page of a live padded list of that device', () => {
    expect(allowlisted(reachableDiv({ pfns: [padPfn] }), ctx)).toBe('D3');
  });

  it('not an extra page that is no pad page (the page after the pad, the page before the buffer)', () => {
    expect(allowlisted(reachableDiv({ pfns: [padPfn + 1] }), ctx)).toBeUndefined();
    expect(allowlisted(reachableDiv({ pfns: [A / 4096 - 1] }), ctx)).toBeUndefined();
  });

  it('not a pad page together with a page that is no pad page', () => {
    expect(allowlisted(reachableDiv({ pfns: [padPfn, padPfn + 1] }), ctx)).toBeUndefined();
  });

  it('not when legacy reaches something generic does not, or a permission differs', () => {
    expect(allowlisted(reachableDiv({ pfns: [padPfn], onlyLegacy: ['0x3400000:rw'] }), ctx)).toBeUndefined();
    expect(allowlisted(reachableDiv({ pfns: [padPfn], onlyGeneric: [`0x${PAD_PAGE.toString(16)}:r`, '0x3400000:rw'] }), ctx)).toBeUndefined();
    expect(allowlisted(reachableDiv({ pfns: [padPfn], onlyGeneric: [`0x${PAD_PAGE.toString(16)}:r`, '1 swiotlb:1 page(s)'] }), ctx)).toBeUndefined();
  });

  it('not with no extra page at all', () => {
    expect(allowlisted(reachableDiv({ pfns: [], onlyGeneric: [] }), ctx)).toBeUndefined();
  });

  it('not for another device', () => {
    expect(allowlisted(reachableDiv({ pfns: [padPfn], device: '0000:00:03.0' }), ctx)).toBeUndefined();
  });

  it('not once the padded list is unmapped', () => {
    const dead = new Map([...trusted].map(([k, m]) => [k, { ...m, live: false }]));
    expect(allowlisted(reachableDiv({ pfns: [padPfn] }), { legacy: new Map(), generic: dead })).toBeUndefined();
  });

  it("not for an untrusted device's mapping (untrusted lists are bounced entry by entry, never padded)", () => {
    const untrusted = genericMappings(padScenario(true));
    const m = untrusted.get('s')!;
    expect(m.dev.untrusted).toBe(true);
    expect(allowlisted(reachableDiv({ pfns: [padPfn] }), { legacy: new Map(), generic: untrusted })).toBeUndefined();
  });

  it('not a divergence of another kind carrying the same fields', () => {
    const d: Divergence = { ...reachableDiv({ pfns: [padPfn] }), kind: 'exposure' };
    expect(allowlisted(d, ctx)).toBeUndefined();
  });
});

describe('the allowlist entries D1 and D2 recognise their divergence and nothing else', () => {
  const ctx: AllowContext = { legacy: new Map(), generic: new Map() };
  const entry = (id: string) => ALLOWLIST.find((e) => e.id === id)!;

  it('the allowlist holds D1, D2, D3; every entry has a unique id, a kernel reference and a reason', () => {
    const ids = ALLOWLIST.map((e) => e.id);
    expect(ids).toEqual(expect.arrayContaining(['D1', 'D2', 'D3']));
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of ALLOWLIST) {
      expect(e.reference.length).toBeGreaterThan(0);
      expect(e.reason.length).toBeGreaterThan(0);
    }
  });

  const sgCount = (l: unknown, g: unknown, kind: Divergence['kind'] = 'sg-count'): Divergence => ({ step: 0, kind, detail: 'hand-made', legacy: l, generic: g });

  it('D1: sg-count with fewer (but some) generic segments', () => {
    expect(allowlisted(sgCount({ ok: true, count: 3 }, { ok: true, count: 1 }), ctx)).toBe('D1');
    expect(allowlisted(sgCount({ ok: true, count: 2 }, { ok: true, count: 1 }), ctx)).toBe('D1');
  });

  it('D1: not more generic segments, not equal counts, not a generic count of 0, not a missing count', () => {
    expect(allowlisted(sgCount({ ok: true, count: 1 }, { ok: true, count: 3 }), ctx)).toBeUndefined();
    expect(allowlisted(sgCount({ ok: true, count: 2 }, { ok: true, count: 2 }), ctx)).toBeUndefined();
    expect(allowlisted(sgCount({ ok: true, count: 2 }, { ok: true, count: 0 }), ctx)).toBeUndefined();
    expect(allowlisted(sgCount({ ok: true }, { ok: true, count: 1 }), ctx)).toBeUndefined();
    expect(allowlisted(sgCount({ ok: true, count: 2 }, { ok: false }), ctx)).toBeUndefined();
  });

  it('D1: not another kind with the same step results', () => {
    for (const kind of ['outcome', 'iova', 'sg-stream', 'consumer'] as const) {
      expect(entry('D1').matches(sgCount({ ok: true, count: 3 }, { ok: true, count: 1 }, kind), ctx)).toBe(false);
    }
  });

  const limits = (o: Partial<Divergence>): Divergence => ({
    step: 0,
    kind: 'sg-limits',
    detail: 'hand-made',
    legacy: 'within limits',
    generic: { dma: '0xfffb0000', len: 0x5000 },
    path: 'dma-iommu',
    rule: 'max-seg',
    firstEntryExceeds: true,
    ...o,
  });

  it('D2: a dma-iommu max-seg break whose first entry already exceeds max_seg_size', () => {
    expect(allowlisted(limits({}), ctx)).toBe('D2');
  });

  it('D2: not when the first entry fits, not on legacy, not another rule, not another kind', () => {
    expect(allowlisted(limits({ firstEntryExceeds: false }), ctx)).toBeUndefined();
    expect(allowlisted(limits({ firstEntryExceeds: undefined }), ctx)).toBeUndefined();
    expect(allowlisted(limits({ path: 'legacy-intel', legacy: { dma: '0x1000', len: 0x5000 }, generic: 'within limits' }), ctx)).toBeUndefined();
    expect(allowlisted(limits({ rule: 'boundary' }), ctx)).toBeUndefined();
    expect(allowlisted(limits({ rule: 'dma-mask' }), ctx)).toBeUndefined();
    expect(allowlisted(limits({ kind: 'sg-stream' }), ctx)).toBeUndefined();
  });

  it('D1 and D2 never recognise a reachable divergence, D3 never an sg one', () => {
    const reach = reachableDiv({ pfns: [1] });
    expect(entry('D1').matches(reach, ctx)).toBe(false);
    expect(entry('D2').matches(reach, ctx)).toBe(false);
    expect(entry('D3').matches(sgCount({ ok: true, count: 3 }, { ok: true, count: 1 }), ctx)).toBe(false);
    expect(entry('D3').matches(limits({}), ctx)).toBe(false);
  });

  it('nothing recognises the other kinds', () => {
    for (const kind of ['outcome', 'device-read', 'device-write', 'cpu-memory', 'exposure', 'consumer', 'iova', 'trace', 'leak'] as const) {
      expect(allowlisted({ step: 0, kind, detail: 'hand-made', legacy: { ok: true, count: 3 }, generic: { ok: true, count: 1 } }, ctx)).toBeUndefined();
    }
  });
});
