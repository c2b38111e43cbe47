/**
 * The i915 problem (kernel-semantics 6, 7.1): dma-iommu merges a list of two physically distant
 * pages into one segment (IOVA-contiguous, granule-aligned entries under max_seg_size 64 KiB and
 * a 4 GiB boundary); entry 1 is left with sg_dma_address = DMA_MAPPING_ERROR and sg_dma_len = 0
 * but sg->length = 4096. The pre-8a473dbadccf iterators walk to the end of the list by CPU length,
 * so the GPU is programmed with the page of DMA_MAPPING_ERROR: 0xfffffffffffff000, beyond any
 * address width (VT-d fault reason 0x04). The legacy path never merged, so it reads both pages.
 * A consumer honouring the count (or i915 after its fix) reads the same bytes on both paths.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Divergence } from '../../harness/check/checker.js';
import { failing, runScenario } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { TmpFiles, cli, cliJson, patternHex, scenarioJson } from './helpers.js';

const A = 0x2000000;
const B = 0x3000000;

function i915Scenario(consumer: string): Record<string, unknown> {
  return scenarioJson({
    steps: [
      { op: 'map_sg', dev: 'dev', dir: 'bidirectional', as: 's', sg: [{ phys: '0x2000000', length: 4096 }, { phys: '0x3000000', length: 4096 }] },
      { op: 'consumer_walk', map: 's', consumer },
    ],
  });
}

/** both pages' self-describing bytes, in list order */
const BOTH_PAGES = patternHex(A, 4096) + patternHex(B, 4096);

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

function d1Only(ds: readonly Divergence[]): void {
  expect(ds).toHaveLength(1);
  expect(ds[0]).toMatchObject({ step: 0, kind: 'sg-count', allowlisted: 'D1' });
}

describe('the i915 consumer over a merged list', () => {
  const doc = runScenario(parseScenario(i915Scenario('i915')));
  const legacy = doc.paths['legacy-intel'].steps;
  const generic = doc.paths['dma-iommu'].steps;

  it('legacy returns both entries, dma-iommu one merged 8 KiB segment', () => {
    expect(legacy[0]).toMatchObject({ ok: true, count: 2 });
    expect(generic[0]).toMatchObject({ ok: true, count: 1, segments: [{ len: 8192 }] });
  });

  it('on legacy the walk reads both pages', () => {
    expect(legacy[1]).toEqual({ ok: true, data: BOTH_PAGES });
  });

  it('on dma-iommu the walk programs the page of DMA_MAPPING_ERROR and faults beyond the width (0x04)', () => {
    // entry 0 (CPU length 4096 at the segment's address) is read; entry 1's GTT page is
    // DMA_MAPPING_ERROR rounded down to a page, beyond the 39-bit width
    expect(generic[1]).toEqual({ ok: false, fault: { reason: '0x04', type: 'read', addr: '0xfffffffffffff000' } });
    expect(generic[1]).not.toEqual(legacy[1]);
  });

  it('is a "consumer" divergence that no allowlist entry recognises, and it fails the gate', () => {
    const consumer = doc.divergences.filter((d) => d.kind === 'consumer');
    expect(consumer).toHaveLength(1);
    expect(consumer[0]!.step).toBe(1);
    expect(consumer[0]!.allowlisted).toBeUndefined();
    const f = failing(doc, false);
    expect(f.map((d) => d.kind)).toEqual(['consumer']);
    // the merge itself is D1
    expect(doc.divergences.filter((d) => d.kind === 'sg-count').map((d) => d.allowlisted)).toEqual(['D1']);
  });

  it('the CLI exits 1 on it', async () => {
    const r = await cliJson(tmp.write(i915Scenario('i915')));
    expect(r.code).toBe(1);
    expect(r.err).toEqual([]);
    expect(r.doc.divergences.some((d) => d.kind === 'consumer' && d.allowlisted === undefined)).toBe(true);
  });
});

describe.each(['correct', 'i915-fixed'])('the %s consumer over the same list', (consumer) => {
  it('reads both pages on both paths; the only divergence is the allowlisted D1 merge', () => {
    const doc = runScenario(parseScenario(i915Scenario(consumer)));
    expect(doc.paths['legacy-intel'].steps[1]).toEqual({ ok: true, data: BOTH_PAGES });
    expect(doc.paths['dma-iommu'].steps[1]).toEqual({ ok: true, data: BOTH_PAGES });
    d1Only(doc.divergences.filter((d) => d.kind !== 'trace'));
    expect(failing(doc, false)).toEqual([]);
  });

  it('the CLI exits 0 on it, and its text report names D1', async () => {
    const r = await cli(['scenario', tmp.write(i915Scenario(consumer))]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out.some((l) => l.includes('D1'))).toBe(true);
  });
});
