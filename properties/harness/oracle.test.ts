/**
 * The real-kernel recordings replayed through the CLI, as ../shared/oracle/check.py does it:
 * `dmadiff scenario FILE --json`, every expected field equal for both paths (hex strings as
 * numbers, lists of equal length elementwise, objects as subsets); strict-main's trace events,
 * line for line; and the divergences such a real run shows are exactly the intended ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failing, type ResultDoc } from '../../harness/run/runner.js';
import { FIXTURE_NAMES, TmpFiles, cliJson, loadFixture, sub, type OracleCase } from './helpers.js';


const PATHS = ['legacy-intel', 'dma-iommu'] as const;

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

const runs = new Map<string, { code: number; doc: ResultDoc; err: string[] }>();
const cases = new Map<string, OracleCase>();

beforeAll(async () => {
  for (const name of FIXTURE_NAMES) {
    const c = loadFixture(name);
    cases.set(name, c);
    runs.set(name, await cliJson(tmp.write(c.scenario)));
  }
});

/** The steps where the recording shows legacy-intel returning more map_sg segments than dma-iommu. */
function recordedSgCountSteps(c: OracleCase): number[] {
  const counts = (p: string): Map<number, number> =>
    new Map((c.expect[p] ?? []).filter((e) => typeof e['count'] === 'number').map((e) => [e.step, e['count'] as number]));
  const l = counts('legacy-intel');
  const g = counts('dma-iommu');
  return [...l].filter(([s, n]) => g.has(s) && g.get(s)! < n).map(([s]) => s).sort((a, b) => a - b);
}

describe.each(FIXTURE_NAMES)('recording %s through `dmadiff scenario FILE --json`', (name) => {
  it('prints one dmadiff-result/1 document with one result per step per path, exit code 0, nothing on stderr', () => {
    const r = runs.get(name)!;
    const c = cases.get(name)!;
    const nSteps = (c.scenario['steps'] as unknown[]).length;
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.doc.format).toBe('dmadiff-result/1');
    for (const p of PATHS) expect(r.doc.paths[p].steps).toHaveLength(nSteps);
  });

  it.each(PATHS)('every field the recording expects on %s equals the step result (check.py rules)', (p) => {
    const r = runs.get(name)!;
    const c = cases.get(name)!;
    const exps = c.expect[p]!;
    expect(exps.length).toBeGreaterThan(0);
    const bad: string[] = [];
    for (const e of exps) {
      const { step, ...want } = e;
      const got = r.doc.paths[p].steps[step];
      if (got === undefined || !sub(want, got)) bad.push(`step ${step}: want ${JSON.stringify(want).slice(0, 160)} got ${JSON.stringify(got).slice(0, 160)}`);
    }
    expect(bad).toEqual([]);
  });

  it('shows only allowlisted divergences: D1 wherever the recording has fewer generic segments, D2 only where 6.1 merged past max_seg_size', () => {
    const r = runs.get(name)!;
    const c = cases.get(name)!;
    expect(failing(r.doc, false)).toEqual([]);
    expect(r.doc.divergences.filter((d) => d.allowlisted === undefined && d.kind !== 'trace')).toEqual([]);
    const sgCount = r.doc.divergences.filter((d) => d.kind === 'sg-count');
    expect(sgCount.map((d) => d.step)).toEqual(recordedSgCountSteps(c));
    for (const d of sgCount) expect(d.allowlisted).toBe('D1');
    const others = r.doc.divergences.filter((d) => d.kind !== 'sg-count');
    if (name === 'strict-main') {
      // step 53 set max_seg_size 4096; step 55 maps 0x2000 + 0x3000, which 6.1 merged into one 0x5000 segment
      const steps = c.scenario['steps'] as Array<Record<string, unknown>>;
      expect(steps[53]).toMatchObject({ op: 'set_max_seg_size', size: 4096 });
      expect(steps[55]).toMatchObject({ op: 'map_sg', sg: [{ length: 0x2000 }, { length: 0x3000 }] });
      expect(c.expect['dma-iommu']!.find((e) => e.step === 55)).toMatchObject({ count: 1, segments: [{ len: 0x5000 }] });
      expect(others).toHaveLength(1);
      expect(others[0]).toMatchObject({ step: 55, kind: 'sg-limits', path: 'dma-iommu', rule: 'max-seg', firstEntryExceeds: true, allowlisted: 'D2' });
    } else {
      expect(others).toEqual([]);
    }
  });
});

describe('strict-main trace events', () => {
  it.each(PATHS)('%s: the events of the covered steps equal the recording line for line (event, text)', (p) => {
    const c = cases.get('strict-main')!;
    const r = runs.get('strict-main')!;
    const [from, to] = c.trace!.coversSteps;
    expect([from, to]).toEqual([0, 88]);
    const want = c.trace!.events[p]!;
    expect(want.length).toBeGreaterThan(0);
    const got = r.doc.paths[p].trace.filter((t) => t.step >= from && t.step < to).map((t) => ({ event: t.event, text: t.text }));
    expect(got).toHaveLength(want.length);
    got.forEach((g, i) => expect(g, `event ${i}`).toEqual(want[i]));
  });

  it('trace entries carry the step that emitted them, in step order', () => {
    const r = runs.get('strict-main')!;
    for (const p of PATHS) {
      const steps = r.doc.paths[p].trace.map((t) => t.step);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      // step 1 is the first map (dma_set_mask emits nothing)
      expect(steps[0]).toBe(1);
    }
  });
});

describe("the comparison is check.py's", () => {
  it('hex strings compare as numbers, case-insensitively, with plain integers too', () => {
    expect(sub({ dma: '0xFFFFF000' }, { ok: true, dma: '0xfffff000' })).toBe(true);
    expect(sub({ len: '0x1000' }, { len: 4096 })).toBe(true);
    expect(sub({ dma: '0xffffffffffffffff' }, { dma: '0xfffffffffffffffe' })).toBe(false);
  });

  it('objects are subsets, lists must match in length and element by element', () => {
    expect(sub({ ok: true }, { ok: true, dma: '0x1000' })).toBe(true);
    expect(sub({ ok: true, count: 2 }, { ok: true })).toBe(false);
    expect(sub({ segments: [{ len: 4096 }] }, { segments: [{ dma: '0x1000', len: 4096 }] })).toBe(true);
    expect(sub({ segments: [{ len: 4096 }] }, { segments: [{ len: 4096 }, { len: 4096 }] })).toBe(false);
    expect(sub({ data: 'a5' }, { data: 'A5' })).toBe(false);
  });
});
