/**
 * reports/attribute.ts: what a physical page is to a path. A coherent page freed with one buffer
 * and handed to the next (the buddy allocator gives out the lowest free block) belongs to the
 * live buffer, on both paths.
 */
import { describe, expect, it } from 'vitest';
import { PathRunner } from '../../harness/run/path-runner.js';
import { createPath, type PathName } from '../../harness/run/paths.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { attributePage } from '../../reports/attribute.js';
import { EDU, IOAPIC_RESERVED, scenarioJson } from '../support/scenario.js';

describe('attributePage', () => {
  it.each(['legacy-intel', 'dma-iommu'] as PathName[])('%s: a reused coherent page is the live buffer\'s', (name) => {
    const s = parseScenario(
      scenarioJson({
        reserved: [IOAPIC_RESERVED],
        steps: [
          { op: 'alloc_coherent', dev: EDU.id, size: 4096, as: 'old' },
          { op: 'free_coherent', map: 'old' },
          { op: 'alloc_coherent', dev: EDU.id, size: 4096, as: 'new' },
        ],
      }),
    );
    const r = new PathRunner(createPath(name, s), s);
    s.steps.forEach((st, i) => r.run(i, st));
    const pfn = r.mappings.get('new')!.coherent!.pfns[0]!;
    // the premise: the new buffer got the freed one's page
    expect(r.mappings.get('old')!.coherent!.pfns[0]).toBe(pfn);
    expect(attributePage(r, pfn)).toBe('new page 0 (coherent, live)');
  });
});
