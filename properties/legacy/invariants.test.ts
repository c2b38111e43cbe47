/**
 * The page-table checks run inside the legacy path (5.10): a root entry broken between two steps (the SNP
 * bit set on a non-leaf entry, which the driver never writes) stops the next map or unmap that
 * touches it with an InvariantError. The edu device's first IOVAs are 0xfffff000 and 0xffffe000
 * (below 4 GiB, top down); with 39 bits (3 levels) both hang off root entry 3, IOVA pfn 0xc0000.
 */
import { describe, expect, it } from 'vitest';
import { breakRootEntry, brokenRootEntry } from '../support/broken-tables.js';
import { mapPage, run, scenarioJson, unmap, type StepJson } from './helpers.js';

const broken = brokenRootEntry;

describe('5.10: the page-table checks run on every map and unmap', () => {
  const after = breakRootEntry;

  it('the next map through the broken entry throws', () => {
    const steps: StepJson[] = [mapPage('a', 0x100_0000, 4096, 'to_device'), mapPage('b', 0x100_2000, 4096, 'to_device')];
    expect(() => run(scenarioJson({ steps }), after)).toThrow(broken('__domain_mapping', '0xffffe..0xffffe'));
  });

  it('the next unmap through the broken entry throws', () => {
    const steps: StepJson[] = [mapPage('a', 0x100_0000, 4096, 'to_device'), unmap('a')];
    expect(() => run(scenarioJson({ steps }), after)).toThrow(broken('domain_unmap', '0xfffff..0xfffff'));
  });

  it('unbroken, the same steps run', () => {
    const steps: StepJson[] = [mapPage('a', 0x100_0000, 4096, 'to_device'), mapPage('b', 0x100_2000, 4096, 'to_device'), unmap('a'), unmap('b')];
    expect(run(scenarioJson({ steps })).results.map((r) => r.ok)).toEqual([true, true, true, true]);
  });
});
