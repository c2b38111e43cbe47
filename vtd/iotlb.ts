/**
 * The IOTLB: leaf translations cached per (domain id, page, page size), bounded, with FIFO
 * replacement so that every run evicts the same entries. A translation survives any change to
 * the page tables until an invalidation removes it -- which is what makes a missing invalidation
 * observable.
 */
import type { TranslationJournal } from './journal.js';
import { levelBase, lvlToNrPages, modPow2 } from './regs.js';

/** Page sizes an entry can have: 4 KiB, 2 MiB, 1 GiB (levels 1-3). */
const MAX_IOTLB_LEVEL = 3;

export interface IotlbEntry {
  readonly did: number;
  /** first 4 KiB pfn covered by the entry (aligned to its page size) */
  readonly basePfn: number;
  /** 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB */
  readonly level: number;
  /** physical pfn of the first page */
  readonly physBasePfn: number;
  /** bit 0 read, bit 1 write: the permissions of the whole walk, intersected */
  readonly perm: number;
  readonly snp: boolean;
  live: boolean;
}

/** Map key: the aligned base pfn (< 2^45) times 4 plus the level, exact in a double. */
function key(basePfn: number, level: number): number {
  return basePfn * 4 + level;
}

export class Iotlb {
  private readonly byDid = new Map<number, Map<number, IotlbEntry>>();
  private readonly fifo: IotlbEntry[] = [];
  private fifoHead = 0;
  private count = 0;
  /** bumped by every change of contents (reports use it to know nothing changed) */
  version = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** The cached translation covering pfn in domain did, trying 4 KiB, 2 MiB then 1 GiB. */
  lookup(did: number, pfn: number): IotlbEntry | undefined {
    const m = this.byDid.get(did);
    if (m === undefined) return undefined;
    let e = m.get(pfn * 4 + 1);
    if (e !== undefined) return e;
    e = m.get(key(levelBase(pfn, 2), 2));
    if (e !== undefined) return e;
    return m.get(key(levelBase(pfn, 3), 3));
  }

  /** Told of every entry filled or dropped, when a derived view is kept current. */
  journal: TranslationJournal | undefined;

  /** Whether any entry of domain did is cached. */
  holdsDomain(did: number): boolean {
    const m = this.byDid.get(did);
    return m !== undefined && m.size > 0;
  }

  /** The live entry of did based at basePfn with that level, if any. */
  at(did: number, basePfn: number, level: number): IotlbEntry | undefined {
    return this.byDid.get(did)?.get(key(basePfn, level));
  }

  /** Every live entry of did. */
  *entriesOf(did: number): IterableIterator<IotlbEntry> {
    const m = this.byDid.get(did);
    if (m !== undefined) yield* m.values();
  }

  insert(did: number, pfn: number, level: number, physBasePfn: number, perm: number, snp: boolean): IotlbEntry {
    const basePfn = levelBase(pfn, level);
    let m = this.byDid.get(did);
    if (m === undefined) {
      m = new Map();
      this.byDid.set(did, m);
    }
    const k = key(basePfn, level);
    const old = m.get(k);
    if (old !== undefined) this.drop(m, k, old);
    while (this.count >= this.capacity) this.evictOldest();
    const e: IotlbEntry = { did, basePfn, level, physBasePfn, perm, snp, live: true };
    m.set(k, e);
    this.fifo.push(e);
    this.count++;
    this.version++;
    this.journal?.iotlbEntry(did, basePfn, lvlToNrPages(level));
    return e;
  }

  private drop(m: Map<number, IotlbEntry>, k: number, e: IotlbEntry): void {
    m.delete(k);
    e.live = false;
    this.count--;
    this.version++;
    this.journal?.iotlbEntry(e.did, e.basePfn, lvlToNrPages(e.level));
  }

  private evictOldest(): void {
    while (this.fifoHead < this.fifo.length) {
      const e = this.fifo[this.fifoHead++]!;
      if (e.live) {
        this.drop(this.byDid.get(e.did)!, key(e.basePfn, e.level), e);
        break;
      }
    }
    if (this.fifoHead > 4096 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo.splice(0, this.fifoHead);
      this.fifoHead = 0;
    }
  }

  invalidateAll(): number {
    this.version++;
    const n = this.count;
    for (const m of this.byDid.values()) {
      for (const e of m.values()) {
        e.live = false;
        this.journal?.iotlbEntry(e.did, e.basePfn, lvlToNrPages(e.level));
      }
    }
    this.byDid.clear();
    this.fifo.length = 0;
    this.fifoHead = 0;
    this.count = 0;
    return n;
  }

  invalidateDomain(did: number): number {
    const m = this.byDid.get(did);
    if (m === undefined) return 0;
    const n = m.size;
    this.version++;
    for (const e of m.values()) {
      e.live = false;
      this.journal?.iotlbEntry(e.did, e.basePfn, lvlToNrPages(e.level));
    }
    this.count -= n;
    this.byDid.delete(did);
    return n;
  }

  /**
   * Page-selective invalidation: every entry of did overlapping the naturally aligned block of
   * 2^am pages that contains pfn. The hardware ignores the address bits below am -- an unaligned
   * start therefore does not widen the block (kernel-semantics 7.5).
   */
  invalidatePages(did: number, pfn: number, am: number): number {
    const m = this.byDid.get(did);
    if (m === undefined || m.size === 0) return 0;
    const span = 2 ** am;
    const first = pfn - modPow2(pfn, span);
    const last = first + span - 1;
    // Which entries overlap does not depend on how they are found: a small block is probed at
    // each page size (span + 2 lookups at most), a large one against every entry of the domain.
    if (span + 2 <= m.size) {
      let n = 0;
      for (let level = 1; level <= MAX_IOTLB_LEVEL; level++) {
        const step = lvlToNrPages(level);
        for (let base = levelBase(first, level); base <= last; base += step) {
          const k = key(base, level);
          const e = m.get(k);
          if (e !== undefined) {
            this.drop(m, k, e);
            n++;
          }
        }
      }
      return n;
    }
    let n = 0;
    for (const e of m.values()) {
      if (e.basePfn <= last && e.basePfn + lvlToNrPages(e.level) - 1 >= first) {
        this.drop(m, key(e.basePfn, e.level), e);
        n++;
      }
    }
    return n;
  }

  /** Every live entry, for reachable-set reports. */
  *entries(): IterableIterator<IotlbEntry> {
    for (const m of this.byDid.values()) yield* m.values();
  }
}
