/**
 * Fidelity of the legacy path (Linux 5.10.262's intel_dma_ops) against the real recordings in
 * properties/fixtures/oracle/ (copies of shared/oracle/, recorded from real 5.10.262 under QEMU
 * 7.2's intel-iommu).
 *
 * Every expectation of `expect['legacy-intel']` is compared with the model's step result
 * exactly as shared/oracle/check.py compares them (0x-strings as numbers, lists of equal length
 * elementwise, objects as subsets), one test per step; and strict-main's trace is compared line
 * by line (event and text) with the model's events of the steps in `trace.coversSteps`.
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
  const exps = fx.expect['legacy-intel']!;
  const r = run(fx.scenario);

  describe(`${file}: legacy-intel steps`, () => {
    it('the recording has expectations for the legacy path and the model ran every step', () => {
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

describe('strict-main.json: legacy-intel trace', () => {
  const fx = loadFixture('strict-main.json') as Fixture;
  const trace = fx.trace!;
  const [from, to] = trace.coversSteps;
  const want = trace.events['legacy-intel']!;
  const r = run(fx.scenario);
  const got = r.model.machine.trace.events.filter((e) => e.step >= from && e.step < to).map((e) => ({ event: e.event, text: e.text }));

  it('covers steps [0, 88) with the recorded number of events', () => {
    expect([from, to]).toEqual([0, 88]);
    expect(got.length, `model emitted ${got.length} events, the kernel ${want.length}`).toBe(want.length);
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
    expect(bad.slice(0, 10).join('\n')).toBe('');
  });

  it('every event belongs to the intel_iommu system (5.10 has no iommu:map/unmap or qi_submit)', () => {
    const systems = new Set(r.model.machine.trace.events.map((e) => e.system));
    expect([...systems]).toEqual(['intel_iommu']);
  });
});

describe('the comparison itself follows check.py', () => {
  it('0x-strings compare as numbers, objects as subsets, lists by length and element', () => {
    expect(subsetMismatch({ ok: true, dma: '0xFFFFF000' }, { ok: true, dma: '0xfffff000', extra: 1 })).toBeNull();
    expect(subsetMismatch({ dma: '0xfffff000' }, { dma: '0xffffe000' })).not.toBeNull();
    expect(subsetMismatch({ fault: { reason: '0x05' } }, { fault: { reason: '0x5', type: 'write', addr: '0x0' } })).toBeNull();
    expect(subsetMismatch({ segments: [{ dma: '0x1000' }] }, { segments: [{ dma: '0x1000', len: 1 }, { dma: '0x2000', len: 1 }] })).not.toBeNull();
    expect(subsetMismatch({ ok: true }, { ok: false })).not.toBeNull();
    expect(subsetMismatch({ data: 'ab' }, { data: 'AB' })).not.toBeNull();
    expect(subsetMismatch({ count: 3 }, {})).not.toBeNull();
  });
});
