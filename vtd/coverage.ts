/**
 * Caching mode (CM=1) bookkeeping: when did an invalidation last cover a translation?
 *
 * With CM=1 the hardware may cache not-present entries, so software must invalidate after making
 * an entry present (kernel-semantics 5.6). The model takes the worst case a virtual IOMMU allows:
 * an entry written after the last invalidation that covers it is not seen at all -- as if the
 * not-present entry had been cached and never evicted (QEMU shadowing for an assigned device
 * behaves so). Each invalidation records the memory write sequence at the moment it ran; an
 * entry is visible only if every word the walk read was written at or before that point.
 */
import { sidsCovered } from './context-cache.js';

export class IotlbCoverage {
  private global = 0;
  private readonly domain = new Map<number, number>();
  /** did → AM → aligned block index → write sequence */
  private readonly pages = new Map<number, Map<number, Map<number, number>>>();

  recordGlobal(seq: number): void {
    this.global = seq;
    this.domain.clear();
    this.pages.clear();
  }

  recordDomain(did: number, seq: number): void {
    this.domain.set(did, seq);
    this.pages.delete(did);
  }

  recordPages(did: number, pfn: number, am: number, seq: number): void {
    let byAm = this.pages.get(did);
    if (byAm === undefined) {
      byAm = new Map();
      this.pages.set(did, byAm);
    }
    let blocks = byAm.get(am);
    if (blocks === undefined) {
      blocks = new Map();
      byAm.set(am, blocks);
    }
    blocks.set(Math.floor(pfn / 2 ** am), seq);
  }

  /** The write sequence of the latest invalidation covering pfn of did. */
  lastCovering(did: number, pfn: number): number {
    let best = Math.max(this.global, this.domain.get(did) ?? 0);
    const byAm = this.pages.get(did);
    if (byAm !== undefined) {
      for (const [am, blocks] of byAm) {
        const s = blocks.get(Math.floor(pfn / 2 ** am));
        if (s !== undefined && s > best) best = s;
      }
    }
    return best;
  }
}

export class ContextCoverage {
  private global = 0;
  private readonly domain = new Map<number, number>();
  private readonly device = new Map<number, number>();

  recordGlobal(seq: number): void {
    this.global = seq;
    this.domain.clear();
    this.device.clear();
  }

  recordDomain(did: number, seq: number): void {
    this.domain.set(did, seq);
  }

  recordDevice(sid: number, fm: number, seq: number): void {
    for (const s of sidsCovered(sid, fm)) this.device.set(s, seq);
  }

  /** did is the domain the entry now names (a domain-selective flush covers it), if present. */
  lastCovering(sid: number, did: number | undefined): number {
    let best = Math.max(this.global, this.device.get(sid) ?? 0);
    if (did !== undefined) best = Math.max(best, this.domain.get(did) ?? 0);
    return best;
  }
}
