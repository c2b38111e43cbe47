/**
 * Fidelity of the generic path (Linux 6.1.192's iommu_dma_ops over the converted VT-d driver)
 * against the real recordings in properties/fixtures/oracle/ (byte-for-byte copies of
 * shared/oracle/, recorded from real 6.1.192 and 5.10.262 under QEMU 7.2's intel-iommu).
 *
 * Every expectation of `expect['dma-iommu']` is compared with the model's step result exactly as
 * shared/oracle/check.py compares them (0x-strings as numbers, lists of equal length elementwise,
 * objects as subsets), one test per step; and strict-main's recorded trace is compared line by
 * line (event and text) with the model's events of the steps in `trace.coversSteps`.
 */
import { describe, expect, it } from 'vitest';
import { loadFixture, run, subsetMismatch } from './helpers.js';

interface Expectation {
  step: number;
  [field: string]: unknown;
}

interface Fixture {
  name: string;
  scenario: unknown;
  expect: Record<string, Expectation[]>;
  trace?: { coversSteps: [number, number]; events: Record<string, Array<{ event: string; text: string }>> };
}

const FIXTURES = ['strict-main.json', 'strict-dmacheck.json'] as const;

for (const file of FIXTURES) {
  const fx = loadFixture(file) as Fixture;
  const exps = fx.expect['dma-iommu'] ?? [];
  const r = run(fx.scenario);

  describe(`${file}: dma-iommu steps`, () => {
    it('the recording has expectations for the generic path and the model ran every step', () => {
      expect(exps.length).toBeGreaterThan(0);
      expect(r.results.length).toBe(r.scenario.steps.length);
    });

    for (const e of exps) {
      const want = Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'step'));
      it(`step ${e.step} (${r.scenario.steps[e.step]?.op ?? '?'})`, () => {
        const got = r.results[e.step];
        const diff = subsetMismatch(want, got);
        expect(diff, `step ${e.step}: want ${JSON.stringify(want)}\n got ${JSON.stringify(got)}`).toBeNull();
      });
    }
  });
}

describe('the comparison itself behaves as check.py', () => {
  it('hex strings compare as numbers, objects as subsets, lists by length and element', () => {
    expect(subsetMismatch({ dma: '0xFFFFF000' }, { ok: true, dma: '0xfffff000' })).toBeNull();
    expect(subsetMismatch({ dma: '0xfffff000' }, { ok: true, dma: '0xffffe000' })).not.toBeNull();
    expect(subsetMismatch({ segments: [{ len: 1 }] }, { segments: [{ len: 1 }, { len: 2 }] })).not.toBeNull();
    expect(subsetMismatch({ fault: { reason: '0x06' } }, { ok: false, fault: { reason: '0x6', type: 'read' } })).toBeNull();
    expect(subsetMismatch({ ok: true }, { ok: false })).not.toBeNull();
  });
});

describe('strict-main.json: dma-iommu trace', () => {
  const fx = loadFixture('strict-main.json') as Fixture;
  const trace = fx.trace!;
  const [from, to] = trace.coversSteps;
  const want = trace.events['dma-iommu']!;
  const r = run(fx.scenario);
  const got = r.model.machine.trace.events.filter((e) => e.step >= from && e.step < to).map((e) => ({ event: e.event, text: e.text }));

  it('covers steps [0, 88) with the recorded number of events', () => {
    expect([from, to]).toEqual([0, 88]);
    expect(got.length, `model emitted ${got.length} events, the kernel ${want.length}`).toBe(want.length);
  });

  it('the recorded events are only map, unmap and qi_submit', () => {
    expect(new Set(want.map((e) => e.event))).toEqual(new Set(['map', 'unmap', 'qi_submit']));
  });

  it('every event equals the recorded one, line by line', () => {
    const n = Math.max(want.length, got.length);
    const bad: string[] = [];
    for (let i = 0; i < n; i++) {
      const w = want[i];
      const g = got[i];
      if (w === undefined || g === undefined || w.event !== g.event || w.text !== g.text) {
        bad.push(`line ${i}: want ${w === undefined ? '(none)' : `${w.event}: ${w.text}`}\n          got  ${g === undefined ? '(none)' : `${g.event}: ${g.text}`}`);
      }
    }
    expect(bad.slice(0, 10).join('\n'), `${bad.length} lines differ`).toBe('');
  });

  it('set-up emitted nothing the recording would have shown (no events before step 0 in the window)', () => {
    const setup = r.model.machine.trace.events.filter((e) => e.step < 0 && (e.event === 'map' || e.event === 'unmap'));
    expect(setup).toEqual([]);
  });
});
