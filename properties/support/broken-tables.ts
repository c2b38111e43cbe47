/**
 * Tables to break by hand, for the tests that prove the page-table invariant checks fire: a page
 * source for a table built outside any machine, and a root entry broken between two steps with
 * the suite both paths run on it.
 */
import { describe, expect, it } from 'vitest';
import type { PageSource } from '../../intel-common/intel-pgtable.js';
import type { DmaPath } from '../../platform/dma-api.js';
import type { PhysMemory } from '../../vtd/memory.js';
import type { Run, StepJson } from './scenario.js';
import { mapPage, unmap } from './steps.js';

/** table pages from pfn 0x100 up, in order, each zeroed when handed out */
export class TablePages implements PageSource {
  next = 0x100;
  constructor(private readonly memory: PhysMemory) {}
  alloc(): number {
    const pfn = this.next++;
    for (let i = 0; i < 512; i++) this.memory.writeQword(pfn * 4096 + i * 8, 0, 0);
    return pfn;
  }
  free(): void {}
  handedOut(pfn: number): boolean {
    return pfn >= 0x100 && pfn < this.next;
  }
}

/**
 * An `after` hook for the path suites' runners: after step 0, set bit 11 (SNP) in the root
 * table's entry 3 of device `dev`'s domain, a bit the driver never writes on a non-leaf entry.
 */
export function breakRootEntry(step: number, model: DmaPath): void {
  if (step !== 0) return;
  const mem = model.machine.memory;
  const at = model.domainPgtable(model.device('dev')).pgdPfn * 4096 + 3 * 8;
  const v = mem.readU64(at);
  mem.writeQword(at, Number(v & 0xffff_ffffn) | 0x800, Number(v >> 32n));
}

/** The check's message for that entry (IOVA pfn 0xc0000 on a 3-level table), after `after` of `pfns`. */
export function brokenRootEntry(after: string, pfns: string): RegExp {
  return new RegExp(`^page table after ${after} of pfns ${pfns}: the level-3 entry at 0x[0-9a-f]+ \\(iova pfn 0xc0000\\) is a non-leaf entry whose bits are not R\\|W \\(0x803\\)$`);
}

/**
 * The suite both paths run: a root entry broken after step 0 stops the next map or unmap that
 * walks through it. The edu device's first IOVAs are 0xfffff000 and 0xffffe000 (below 4 GiB, top
 * down); with 39 bits (3 levels) both hang off root entry 3, IOVA pfn 0xc0000. `run` runs steps
 * on the path with an optional after-step hook.
 */
export function describeBrokenRootEntry(release: string, run: (steps: StepJson[], after?: (step: number, model: DmaPath) => void) => Run): void {
  describe(`${release}: the page-table checks run on every map and unmap`, () => {
    it('the next map through the broken entry throws', () => {
      const steps = [mapPage('a', 0x100_0000, 4096, 'to_device'), mapPage('b', 0x100_2000, 4096, 'to_device')];
      expect(() => run(steps, breakRootEntry)).toThrow(brokenRootEntry('__domain_mapping', '0xffffe..0xffffe'));
    });

    it('the next unmap through the broken entry throws', () => {
      const steps = [mapPage('a', 0x100_0000, 4096, 'to_device'), unmap('a')];
      expect(() => run(steps, breakRootEntry)).toThrow(brokenRootEntry('domain_unmap', '0xfffff..0xfffff'));
    });

    it('unbroken, the same steps run', () => {
      const steps = [mapPage('a', 0x100_0000, 4096, 'to_device'), mapPage('b', 0x100_2000, 4096, 'to_device'), unmap('a'), unmap('b')];
      expect(run(steps).results.map((r) => r.ok)).toEqual([true, true, true, true]);
    });
  });
}
