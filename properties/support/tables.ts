/**
 * The VT-d translation structures read straight from simulated memory, as the VT-d spec lays
 * them out (root entry -> context entry -> second-level tables of AW + 2 levels, PS bit 7 ending
 * the walk), independently of the driver's table code.
 */
import type { DmaPath } from '../../platform/dma-api.js';

export interface LeafPte {
  /** the raw 64-bit entry */
  value: bigint;
  /** 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB */
  level: number;
}

const ADDR_MASK = 0x000f_ffff_ffff_f000n;

/** The two quadwords of the context entry for source id `sid`; null when the root entry is not present. */
function contextEntry(model: DmaPath, sid: number): { lo: bigint; hi: bigint } | null {
  const mem = model.machine.memory;
  const root = mem.readU64(model.machine.hw.rootTableAddress + (sid >>> 8) * 16);
  if ((root & 1n) === 0n) return null;
  const ctxAt = Number(root & ADDR_MASK) + (sid & 0xff) * 16;
  return { lo: mem.readU64(ctxAt), hi: mem.readU64(ctxAt + 8) };
}

/**
 * The leaf entry translating `iova` for source id `sid`, found by walking the tables in
 * simulated memory. null when a level is not present (bits 1:0 both clear).
 */
export function walkLeaf(model: DmaPath, sid: number, iova: bigint): LeafPte | null {
  const ctx = contextEntry(model, sid);
  if (ctx === null || (ctx.lo & 1n) === 0n) return null;
  const mem = model.machine.memory;
  let table = Number(ctx.lo & ADDR_MASK);
  const levels = Number(ctx.hi & 7n) + 2;
  const pfn = iova >> 12n;
  for (let level = levels; level >= 1; level--) {
    const idx = Number((pfn >> BigInt(9 * (level - 1))) & 0x1ffn);
    const e = mem.readU64(table + idx * 8);
    if ((e & 3n) === 0n) return null;
    if (level === 1 || (e & 0x80n) !== 0n) return { value: e, level };
    table = Number(e & ADDR_MASK);
  }
  return null;
}

/** The context entry's domain id and address width field for source id `sid`. */
export function contextOf(model: DmaPath, sid: number): { did: number; aw: number } | null {
  const ctx = contextEntry(model, sid);
  if (ctx === null) return null;
  return { did: Number((ctx.hi >> 8n) & 0xffffn), aw: Number(ctx.hi & 7n) };
}
