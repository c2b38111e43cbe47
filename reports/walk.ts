/**
 * The page walk of a divergence report: how one path's simulated VT-d unit translates one IOVA
 * of a device now -- root entry, context entry, each second-level entry down to the leaf or the
 * first not-present one -- with what the hardware would answer and what its caches still hold.
 * Read-only: memory is read directly and the hardware only through its peek* methods, so no
 * IOTLB or context-cache entry is filled, reordered or counted.
 */
import type { Device } from '../kernel/device.js';
import type { DmaPath } from '../platform/dma-api.js';
import type { CachedContext } from '../vtd/context-cache.js';
import { decodeContext, entryPfn, formatBdf, pteAttrs, pteIsPresent, type ContextEntry } from '../vtd/entries.js';
import { faultReasonText } from '../vtd/fault.js';
import type { VtdHardware } from '../vtd/hardware.js';
import type { IotlbEntry } from '../vtd/iotlb.js';
import type { PhysMemory } from '../vtd/memory.js';
import {
  CONTEXT_TT_MULTI_LEVEL,
  DMA_PTE_READ,
  DMA_PTE_TM_HI,
  DMA_PTE_WRITE,
  ROOT_ENTRY_PRESENT,
  VTD_PAGE_SHIFT,
  VTD_PAGE_SIZE,
  agawToLevel,
  agawToWidth,
  levelBase,
  pfnLevelOffset,
} from '../vtd/regs.js';
import { hex } from '../harness/workload/scenario.js';
import { reasonHex } from '../vtd/fault.js';
import type { PathId, Walk, WalkEntry } from './types.js';

const SHIFT = BigInt(VTD_PAGE_SHIFT);
/** IOTLB entry levels the unit caches: 4 KiB, 2 MiB, 1 GiB (see Iotlb.lookup). */
const IOTLB_LEVELS: readonly number[] = [1, 2, 3];
const SIZE_NAMES: Record<number, string> = { 1: '4K', 2: '2M', 3: '1G' };

/** What the tables say for the IOVA's page: the leaf's target page and the walk's R/W, or where it stopped. */
type TableAnswer = { physPfn: number; perm: number; level: number } | { stop: string };

/** A 64-bit entry value as 0x + 16 hex digits. */
function qwordHex(lo: number, hi: number): string {
  return `0x${((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16).padStart(16, '0')}`;
}

/** Read one qword of memory as (lo, hi), without touching the hardware (the walk's readQword). */
function readEntry(memory: PhysMemory, addr: number): { lo: number; hi: number } {
  const s = new Uint32Array(2);
  memory.readQword(addr, s);
  return { lo: s[0], hi: s[1] };
}

/** Page address of a pfn as a bigint. */
function pageAddr(pfn: number): bigint {
  return BigInt(pfn) << SHIFT;
}

/** "R W" / "R" / "W" / "-" for a permission mask. */
function permText(perm: number): string {
  const p = [(perm & DMA_PTE_READ) !== 0 ? 'R' : '', (perm & DMA_PTE_WRITE) !== 0 ? 'W' : ''].filter((s) => s !== '');
  return p.length === 0 ? '-' : p.join(' ');
}

/** "fault 0x06 (PTE Read access is not set)" for a fault reason (dmar.c's dma_remap_fault_reasons[]). */
function faultText(reason: number): string {
  return `fault ${reasonHex(reason)} (${faultReasonText(reason).text})`;
}

/** What a device read and write of pfn reach now according to the hardware (peek, peekPerm): caches included. */
function hardwareAnswer(hw: VtdHardware, sid: number, pfn: number, iova: bigint): string {
  const pp = hw.peekPerm(sid, pfn);
  if (pp >= 0) return `phys ${hex(pageAddr(Math.floor(pp / 4)) + (iova & BigInt(VTD_PAGE_SIZE - 1)))} ${permText(pp % 4)}`;
  // neither access reaches anything (peekPerm's contract), so the read peek is a fault
  return faultText(-hw.peek(sid, pfn, false));
}

/** The root entry of sid's bus (VT-d 3.4.2; QEMU vtd_get_root_entry). */
function rootEntry(hw: VtdHardware, bus: number): { entry: WalkEntry; present: boolean; ctpPfn: number } {
  const addr = hw.rootTableAddress + bus * 16;
  const { lo, hi } = readEntry(hw.memory, addr);
  const present = (lo & ROOT_ENTRY_PRESENT) !== 0;
  const ctpPfn = entryPfn(lo, hi);
  const bits = [...(present ? ['P'] : []), `CTP=${hex(pageAddr(ctpPfn))}`];
  return { entry: { level: 'root', addr: hex(addr), value: qwordHex(lo, hi), bits }, present, ctpPfn };
}

/** The context entry of devfn in the context table (VT-d 3.4.3; QEMU vtd_get_context_entry_from_root). */
function contextEntry(hw: VtdHardware, ctpPfn: number, devfn: number): { entry: WalkEntry; ce: ContextEntry } {
  const addr = ctpPfn * VTD_PAGE_SIZE + devfn * 16;
  const low = readEntry(hw.memory, addr);
  const high = readEntry(hw.memory, addr + 8);
  const ce = decodeContext(low, high);
  const bits = [
    ...(ce.present ? ['P'] : []),
    ...(ce.fpd ? ['FPD'] : []),
    `TT=${ce.tt}`,
    `SLPTPTR=${hex(pageAddr(ce.slptPfn))}`,
    `AW=${ce.aw}`,
    `DID=${ce.did}`,
    ...(ce.reservedBitsSet ? ['RSVD'] : []),
  ];
  // 128 bits as "high qword:low qword", each 0x + 16 hex digits
  return { entry: { level: 'context', addr: hex(addr), value: `${qwordHex(high.lo, high.hi)}:${qwordHex(low.lo, low.hi)}`, bits }, ce };
}

/** The second-level walk from the context's SLPTPTR (VT-d 3.6; QEMU vtd_iova_to_slpte). */
function walkTables(memory: PhysMemory, ce: ContextEntry, pfn: number, out: WalkEntry[]): TableAnswer {
  let tablePfn = ce.slptPfn;
  let perm = DMA_PTE_READ | DMA_PTE_WRITE;
  for (let level = agawToLevel(ce.aw); level >= 1; level--) {
    const addr = tablePfn * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
    const { lo, hi } = readEntry(memory, addr);
    const a = pteAttrs(lo);
    const nextPfn = entryPfn(lo, hi);
    const bits = [
      ...(a.r ? ['R'] : []),
      ...(a.w ? ['W'] : []),
      ...(a.ps ? ['SP'] : []),
      ...(a.snp ? ['SNP'] : []),
      ...((hi & DMA_PTE_TM_HI) !== 0 ? ['TM'] : []),
      `ADDR=${hex(pageAddr(nextPfn))}`,
    ];
    out.push({ level, addr: hex(addr), value: qwordHex(lo, hi), bits });
    if (!pteIsPresent(lo)) return { stop: `not present at level ${level}` };
    perm &= lo;
    if (level === 1 || a.ps) return { physPfn: nextPfn + (pfn - levelBase(pfn, level)), perm: perm & (DMA_PTE_READ | DMA_PTE_WRITE), level };
    tablePfn = nextPfn;
  }
  return { stop: 'no leaf' }; // unreachable: level 1 always returns
}

/** An IOTLB entry as one line, marked stale when the tables now say otherwise for this page. */
function iotlbLine(e: IotlbEntry, pfn: number, tables: TableAnswer): string {
  const line = `DID ${e.did} iova ${hex(pageAddr(e.basePfn))} ${SIZE_NAMES[e.level] ?? `level ${e.level}`} -> phys ${hex(pageAddr(e.physBasePfn))} ${permText(e.perm)}`;
  const cachedPfn = e.physBasePfn + (pfn - e.basePfn);
  if ('stop' in tables) return `${line} (stale: tables say ${tables.stop})`;
  if (tables.physPfn !== cachedPfn || tables.perm !== (e.perm & (DMA_PTE_READ | DMA_PTE_WRITE))) {
    return `${line} (stale: tables say phys ${hex(pageAddr(tables.physPfn))} ${permText(tables.perm)})`;
  }
  return line;
}

/** The IOTLB entries of these domain ids that cover pfn, every page size (QEMU vtd_lookup_iotlb, without touching it). */
function iotlbLines(hw: VtdHardware, dids: Iterable<number>, pfn: number, tables: TableAnswer): string[] {
  const out: string[] = [];
  for (const did of dids) {
    for (const level of IOTLB_LEVELS) {
      const e = hw.iotlb.at(did, levelBase(pfn, level), level);
      if (e !== undefined) out.push(iotlbLine(e, pfn, tables));
    }
  }
  return out;
}

/** The context-cache entry of sid as one line, marked stale when memory's context entry differs (QEMU vtd_context_cache_entry). */
function contextCacheLine(c: CachedContext, mem: ContextEntry | undefined): string {
  const line = `sid ${formatBdf(c.sid)} DID ${c.did} TT ${c.tt} SLPT ${hex(pageAddr(c.slptPfn))} AW ${c.aw}${c.fpd ? ' FPD' : ''}`;
  if (mem === undefined) return `${line} (stale: no context entry in memory)`;
  const same = mem.present && mem.did === c.did && mem.tt === c.tt && mem.slptPfn === c.slptPfn && mem.aw === c.aw && mem.fpd === c.fpd;
  return same ? line : `${line} (stale: memory says ${mem.present ? `DID ${mem.did} TT ${mem.tt} SLPT ${hex(pageAddr(mem.slptPfn))} AW ${mem.aw}` : 'not present'})`;
}

/** How path's VT-d unit translates iova for dev now, without changing any of its state. */
export function walkIova(path: DmaPath, dev: Device, iova: bigint, why: string, pathId: PathId): Walk {
  const hw = path.machine.hw;
  const sid = dev.sid;
  const pfn = Number(iova >> SHIFT);
  const entries: WalkEntry[] = [];
  const cached = hw.contextCache.lookup(sid); // a Map read: FIFO order and contents unchanged
  const walk: Walk = { path: pathId, device: dev.name, bdf: formatBdf(sid), iova: hex(iova), why, entries, result: '', iotlb: [], contextCache: [] };
  if (!hw.translationOn) {
    walk.result = `${hardwareAnswer(hw, sid, pfn, iova)} (translation disabled)`;
    if (cached !== undefined) walk.contextCache.push(contextCacheLine(cached, undefined));
    return walk;
  }
  const hwSays = hardwareAnswer(hw, sid, pfn, iova);
  const root = rootEntry(hw, sid >>> 8);
  entries.push(root.entry);
  let ce: ContextEntry | undefined;
  let tables: TableAnswer = { stop: 'root entry not present' };
  if (root.present) {
    const ctx = contextEntry(hw, root.ctpPfn, sid & 0xff);
    entries.push(ctx.entry);
    ce = ctx.ce;
    if (!ce.present) tables = { stop: 'context entry not present' };
    else if (ce.tt !== CONTEXT_TT_MULTI_LEVEL) tables = { stop: `context TT=${ce.tt} (no second-level walk)` };
    else if (pfn >= 2 ** (agawToWidth(ce.aw) - VTD_PAGE_SHIFT)) tables = { stop: `beyond the ${agawToWidth(ce.aw)}-bit width` };
    else tables = walkTables(hw.memory, ce, pfn, entries);
  }
  if ('stop' in tables) {
    // the hardware's answer: usually the fault, else what its caches still translate to
    walk.result = hwSays.startsWith('fault') ? `${hwSays}: ${tables.stop}` : `${tables.stop}; hardware still answers ${hwSays}`;
  } else {
    const phys = pageAddr(tables.physPfn) + (iova & (BigInt(VTD_PAGE_SIZE) - 1n));
    const fromTables = tables.perm === 0 ? hwSays : `phys ${hex(phys)} ${permText(tables.perm)}`;
    walk.result = fromTables === hwSays ? fromTables : `${fromTables}; hardware answers ${hwSays}`;
  }
  const dids = new Set<number>();
  if (ce?.present === true) dids.add(ce.did);
  if (cached !== undefined) dids.add(cached.did);
  walk.iotlb = iotlbLines(hw, dids, pfn, tables);
  if (cached !== undefined) walk.contextCache.push(contextCacheLine(cached, ce));
  return walk;
}
