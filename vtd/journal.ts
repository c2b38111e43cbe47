/**
 * What changed, since the last drain, of everything a translation depends on: the hardware's
 * report to whoever keeps a derived view of it current (the harness's reachable sets) so that
 * view costs what changed, not what exists. Plain number arrays: recording is on hot paths.
 *
 * - tracked writes: page-table-region memory (root, context and paging-structure entries), as
 *   (address, bytes);
 * - IOTLB entries filled or dropped, as (did, first pfn, pages);
 * - IOTLB invalidations (what caching mode's visibility depends on), as (did, first pfn, pages),
 *   with did -1 for global and pages -1 for a whole domain;
 * - anything that can change the context a device resolves to (context cache, context
 *   invalidation, root table, translation enable).
 */
export class TranslationJournal {
  readonly writes: number[] = [];
  readonly iotlb: number[] = [];
  readonly coverage: number[] = [];
  contextChanged = false;

  write(addr: number, n: number): void {
    this.writes.push(addr, n);
  }

  iotlbEntry(did: number, basePfn: number, pages: number): void {
    this.iotlb.push(did, basePfn, pages);
  }

  invalidated(did: number, firstPfn: number, pages: number): void {
    this.coverage.push(did, firstPfn, pages);
  }

  context(): void {
    this.contextChanged = true;
  }

  get empty(): boolean {
    return this.writes.length === 0 && this.iotlb.length === 0 && this.coverage.length === 0 && !this.contextChanged;
  }

  clear(): void {
    this.writes.length = 0;
    this.iotlb.length = 0;
    this.coverage.length = 0;
    this.contextChanged = false;
  }
}
