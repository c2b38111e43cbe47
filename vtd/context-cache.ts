/**
 * The context cache: decoded context entries per source id, bounded with FIFO replacement.
 * Invalidated globally, per domain id, or per device (source id with a function mask).
 */
import type { TranslationJournal } from './journal.js';

export interface CachedContext {
  readonly sid: number;
  readonly did: number;
  readonly tt: number;
  readonly slptPfn: number;
  /** the context entry's AW field (agaw) */
  readonly aw: number;
  readonly fpd: boolean;
  /** agawToLevel(aw): table levels of the walk, computed once when the entry is read */
  readonly levels: number;
  /** 2 ** (agawToWidth(aw) - 12): pfns at or above this are beyond the domain's width */
  readonly widthPfnLimit: number;
}

/** Source ids a device-selective invalidation covers: FM masks 0, 1, 2 or 3 low function bits. */
export function sidsCovered(sid: number, fm: number): number[] {
  const maskBits = fm === 0 ? 0 : fm === 1 ? 0b100 : fm === 2 ? 0b110 : 0b111;
  const base = sid & ~maskBits;
  const out: number[] = [];
  for (let f = 0; f <= maskBits; f++) if ((f & ~maskBits) === 0) out.push(base | f);
  return out;
}

export class ContextCache {
  private readonly entries = new Map<number, CachedContext>();
  /** bumped by every change of contents */
  version = 0;
  /** Told of every change of contents, when a derived view is kept current. */
  journal: TranslationJournal | undefined;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(sid: number): CachedContext | undefined {
    return this.entries.get(sid);
  }

  insert(e: CachedContext): void {
    this.version++;
    this.journal?.context();
    this.entries.delete(e.sid);
    if (this.entries.size >= this.capacity) {
      // Map iteration order is insertion order: the first key is the oldest (FIFO)
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
    }
    this.entries.set(e.sid, e);
  }

  invalidateAll(): void {
    this.version++;
    this.journal?.context();
    this.entries.clear();
  }

  invalidateDomain(did: number): void {
    this.version++;
    this.journal?.context();
    for (const [sid, e] of this.entries) if (e.did === did) this.entries.delete(sid);
  }

  invalidateDevice(sid: number, fm: number): void {
    this.version++;
    this.journal?.context();
    for (const s of sidsCovered(sid, fm)) this.entries.delete(s);
  }
}
