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
import { describeRecordedSteps, recordedTrace } from '../support/fidelity.js';
import { traceLineDiffs } from '../support/oracle.js';
import { subsetMismatch } from './helpers.js';

describeRecordedSteps('dma-iommu', 'the generic path');

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
  const { from, to, want, got, r } = recordedTrace('dma-iommu');

  it('covers steps [0, 88) with the recorded number of events', () => {
    expect([from, to]).toEqual([0, 88]);
    expect(got.length, `model emitted ${got.length} events, the kernel ${want.length}`).toBe(want.length);
  });

  it('the recorded events are only map, unmap and qi_submit, and the model emits the same kinds', () => {
    expect(new Set(want.map((e) => e.event))).toEqual(new Set(['map', 'unmap', 'qi_submit']));
    expect(new Set(got.map((e) => e.event))).toEqual(new Set(['map', 'unmap', 'qi_submit']));
  });

  it('every event equals the recorded one, line by line', () => {
    const bad = traceLineDiffs(want, got);
    expect(bad.slice(0, 10).join('\n'), `${bad.length} lines differ`).toBe('');
  });

  it('set-up emitted nothing the recording would have shown (no events before step 0 in the window)', () => {
    const setup = r.model.machine.trace.events.filter((e) => e.step < 0 && (e.event === 'map' || e.event === 'unmap'));
    expect(setup).toEqual([]);
  });
});
