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
import { describeRecordedSteps, recordedTrace } from '../support/fidelity.js';
import { traceLineDiffs } from '../support/oracle.js';
import { subsetMismatch } from './helpers.js';

describeRecordedSteps('legacy-intel', 'the legacy path');

describe('strict-main.json: legacy-intel trace', () => {
  const { from, to, want, got, r } = recordedTrace('legacy-intel');

  it('covers steps [0, 88) with the recorded number of events', () => {
    expect([from, to]).toEqual([0, 88]);
    expect(got.length, `model emitted ${got.length} events, the kernel ${want.length}`).toBe(want.length);
  });

  it('every event equals the recorded one, line by line', () => {
    const bad = traceLineDiffs(want, got);
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
