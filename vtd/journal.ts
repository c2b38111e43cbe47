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
  // each list holds its first n* numbers; clear() resets the counts and keeps the storage
  // (emptying an array by its length frees its store, and the next step grows it again)
  readonly writes: number[] = [];
  readonly iotlb: number[] = [];
  readonly coverage: number[] = [];
  nWrites = 0;
  nIotlb = 0;
  nCoverage = 0;
  contextChanged = false;

  write(addr: number, n: number): void {
    const w = this.writes;
    w[this.nWrites++] = addr;
    w[this.nWrites++] = n;
  }

  iotlbEntry(did: number, basePfn: number, pages: number): void {
    const t = this.iotlb;
    t[this.nIotlb++] = did;
    t[this.nIotlb++] = basePfn;
    t[this.nIotlb++] = pages;
  }

  invalidated(did: number, firstPfn: number, pages: number): void {
    const c = this.coverage;
    c[this.nCoverage++] = did;
    c[this.nCoverage++] = firstPfn;
    c[this.nCoverage++] = pages;
  }

  context(): void {
    this.contextChanged = true;
  }

  get empty(): boolean {
    return this.nWrites === 0 && this.nIotlb === 0 && this.nCoverage === 0 && !this.contextChanged;
  }

  clear(): void {
    this.nWrites = 0;
    this.nIotlb = 0;
    this.nCoverage = 0;
    this.contextChanged = false;
  }
}
