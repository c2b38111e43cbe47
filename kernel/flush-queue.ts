/**
 * The deferred-invalidation flush queue: per-CPU rings of unmapped IOVAs that are freed only
 * after an IOTLB flush that started after they were queued has finished.
 *
 * One piece of code for both releases, with the same constants and algorithm in each
 * (kernel-semantics 1.6, 9.2.2): in 5.10 it lives in iova.c and the owner is the IOVA domain
 * (queue_iova, fq_ring_free, iova_domain_flush, fq_flush_timeout, flush callback
 * iommu_flush_iova); in 6.1 it moved to dma-iommu.c and the owner is the DMA cookie (callback
 * iommu_dma_flush_iotlb_all → the domain's flush_iotlb_all).
 */
import type { SimClock, Timer } from './clock.js';

export const IOVA_FQ_SIZE = 256;
/** IOVA_FQ_TIMEOUT: 10 ms */
export const IOVA_FQ_TIMEOUT_NS = 10_000_000;

export interface FqEntry {
  pfn: number;
  pages: number;
  /** page-table pages freed by the unmap, released with the entry */
  freelist: number[];
  counter: number;
}

interface Ring {
  entries: (FqEntry | undefined)[];
  head: number;
  tail: number;
}

export interface FqCounters {
  queued: number;
  /** flushes because a ring was full */
  fullFlushes: number;
  /** flushes from the timer */
  timerFlushes: number;
  freed: number;
}

export interface FlushQueueOwner {
  /** the domain-wide IOTLB flush (iommu_flush_iova / flush_iotlb_all) */
  flushAll(): void;
  /** entry_dtor + free_iova_fast on the given CPU */
  freeEntry(cpu: number, e: FqEntry): void;
}

export class FlushQueue {
  private readonly rings: Ring[] = [];
  private startCnt = 0;
  private finishCnt = 0;
  private timer: Timer | null = null;
  readonly counters: FqCounters = { queued: 0, fullFlushes: 0, timerFlushes: 0, freed: 0 };

  constructor(
    readonly ncpus: number,
    private readonly clock: SimClock,
    private readonly owner: FlushQueueOwner,
  ) {
    for (let c = 0; c < ncpus; c++) {
      this.rings.push({ entries: new Array<FqEntry | undefined>(IOVA_FQ_SIZE).fill(undefined), head: 0, tail: 0 });
    }
  }

  private full(r: Ring): boolean {
    return (r.tail + 1) % IOVA_FQ_SIZE === r.head;
  }

  /** fq_ring_free: free head entries already covered by a finished flush. */
  private ringFree(cpu: number, r: Ring): void {
    while (r.head !== r.tail) {
      const e = r.entries[r.head]!;
      if (e.counter >= this.finishCnt) break;
      this.owner.freeEntry(cpu, e);
      this.counters.freed++;
      r.entries[r.head] = undefined;
      r.head = (r.head + 1) % IOVA_FQ_SIZE;
    }
  }

  /** iova_domain_flush / fq_flush_iotlb */
  private flush(): void {
    this.startCnt++;
    this.owner.flushAll();
    this.finishCnt++;
  }

  /** queue_iova on `cpu` */
  queueIova(cpu: number, pfn: number, pages: number, freelist: number[]): void {
    const r = this.rings[cpu]!;
    this.ringFree(cpu, r);
    if (this.full(r)) {
      this.flush();
      this.counters.fullFlushes++;
      this.ringFree(cpu, r);
    }
    r.entries[r.tail] = { pfn, pages, freelist, counter: this.startCnt };
    r.tail = (r.tail + 1) % IOVA_FQ_SIZE;
    this.counters.queued++;
    if (this.timer === null) {
      // the timer runs on the CPU that armed it, and so do the frees it does
      this.timer = this.clock.arm(IOVA_FQ_TIMEOUT_NS, () => this.timeout(cpu));
    }
  }

  /** fq_flush_timeout: one flush, then every CPU's ring is freed (on the timer's CPU). */
  private timeout(timerCpu: number): void {
    this.timer = null;
    this.flush();
    this.counters.timerFlushes++;
    for (const r of this.rings) this.ringFree(timerCpu, r);
  }

  /** Entries waiting for a flush, over all CPUs. */
  get pending(): number {
    let n = 0;
    for (const r of this.rings) n += (r.tail - r.head + IOVA_FQ_SIZE) % IOVA_FQ_SIZE;
    return n;
  }

  get timerArmed(): boolean {
    return this.timer !== null;
  }

  /** The IOVA ranges still queued (for exposure and leak reports). */
  *queued(): IterableIterator<FqEntry> {
    for (const r of this.rings) for (let i = r.head; i !== r.tail; i = (i + 1) % IOVA_FQ_SIZE) yield r.entries[i]!;
  }
}
