/**
 * The DMA-API calls behind a trace's IOMMU events, in order: what each release's events let us
 * recover, and nothing they do not say.
 *
 * 5.10 (intel_iommu:*, legacy-intel/trace-events.ts emits the same): every unmap goes through
 * intel_unmap, whose unmap_single names the handle the driver passed back (a dma_unmap_page's own
 * handle, an sg list's first page) with the exact length; unmap_sg and bounce_unmap_single repeat
 * it. map_single prints the handle and physical address with their offset and the size rounded to
 * pages; map_sg prints each entry [i/n] with its DMA address and length. An untrusted device's
 * bounce_map_sg follows one bounce_map_single per entry, and its unmap is one unmap_single per
 * entry (bounce_unmap_sg).
 *
 * 6.1 (iommu:map/unmap from __iommu_map/__iommu_unmap): one map event per physically contiguous,
 * page-aligned run, no device, no call boundary. __iommu_dma_map maps from phys's page for the
 * iova_align'ed size (iommu_dma_map_sg aligns each entry the same way), so a 6.1 trace holds no
 * sub-page offset and no exact length: its calls are taken at offset 0 with whole pages. Runs
 * mapped one after the other on a CPU at consecutive IOVAs are taken as one call (iommu_map_sg
 * maps a list's runs in IOVA order; two calls never get ascending adjacent IOVAs from the
 * top-down allocator unless freed space between them is reused); an unmap event names the call
 * by its first IOVA, and its size checks the grouping: __iommu_dma_unmap unmaps a whole call with
 * one iommu_unmap of the call's size, so a smaller unmap closes the first runs only (the rest was
 * another call, at the next IOVA) and a larger one cannot be.
 */
import { parseDmaMap, parseDmaMapSg, parseDmaUnmap, parseIommuMap, parseIommuUnmap, traceFail, type TraceLine } from './ftrace.js';
import { must } from '../../../kernel/assert.js';
import { iovaOffset, pageAlignDown } from '../../../kernel/bits.js';

export interface TracedEntry {
  /** the real physical address, offset included */
  phys: bigint;
  length: number;
  /** the DMA address the traced kernel gave it */
  dma: bigint;
}

/** One DMA-API map call as the trace shows it, and its unmap if the trace has one. */
export interface TracedCall {
  line: number;
  cpu: number;
  /** the device as the kernel names it ("0000:00:02.0") */
  dev: string;
  kind: 'single' | 'sg';
  /** an untrusted device's call (5.10's bounce_* events) */
  bounced: boolean;
  entries: TracedEntry[];
  /**
   * whether the lengths are the call's own: 5.10's sg lists and bounced singles, and a map_single
   * once its unmap printed the length; never on 6.1, whose events give whole pages
   */
  exactLength: boolean;
  /** the CPU of its unmap, if the trace has one */
  unmapCpu?: number;
}

/** A map or unmap of a call, at the line where it happened (a map: the call's first event). */
export interface TracedAction {
  line: number;
  what: 'map' | 'unmap';
  call: TracedCall;
}

export interface Reconstruction {
  actions: TracedAction[];
  /** unmaps of mappings made before the trace began (a wrapped ring buffer), skipped */
  orphanUnmaps: number;
}

/** An sg list being read entry by entry, per device and CPU. */
interface OpenList {
  line: number;
  total: number;
  entries: TracedEntry[];
}

/** 5.10's intel_iommu events of the devices `keep` accepts, as calls. */
export function calls510(lines: readonly TraceLine[], keep: (dev: string) => boolean): Reconstruction {
  const actions: TracedAction[] = [];
  const single = new Map<string, TracedCall>();
  const sg = new Map<string, TracedCall>();
  /** the other entries of an unmapped bounced list, whose own unmap_single events follow */
  const consume = new Set<string>();
  const open = new Map<string, OpenList>();
  let orphanUnmaps = 0;
  const key = (dev: string, a: bigint): string => `${dev} ${a}`;
  for (const l of lines) {
    switch (l.event) {
      case 'map_single':
      case 'bounce_map_single': {
        const e = parseDmaMap(l);
        if (!keep(e.dev)) break;
        const bounced = l.event === 'bounce_map_single';
        // __intel_map_single prints aligned_nrpages(paddr, size) pages: the length is at most
        // that less the offset (bounce_map_single prints the length itself)
        const length = bounced ? e.size : e.size - iovaOffset(e.physAddr);
        if (length <= 0) traceFail(l.line, `${l.event}: size=${e.size} leaves no byte after the offset of phys_addr`);
        const call: TracedCall = { line: l.line, cpu: l.cpu, dev: e.dev, kind: 'single', bounced, entries: [{ phys: e.physAddr, length, dma: e.devAddr }], exactLength: bounced };
        actions.push({ line: l.line, what: 'map', call });
        single.set(key(e.dev, e.devAddr), call);
        break;
      }
      case 'map_sg':
      case 'bounce_map_sg': {
        const e = parseDmaMapSg(l);
        if (!keep(e.dev)) break;
        const k = `${e.dev} ${l.cpu} ${l.event}`;
        let list = open.get(k);
        if (e.index === 1) {
          if (list !== undefined) traceFail(l.line, `${l.event} [1/${e.total}] before the list that began on line ${list.line} ended`);
          list = { line: l.line, total: e.total, entries: [] };
          open.set(k, list);
        } else if (list === undefined || list.total !== e.total || list.entries.length + 1 !== e.index) {
          traceFail(l.line, `${l.event} [${e.index}/${e.total}] does not continue a list (expected ${list === undefined ? '[1/n]' : `[${list.entries.length + 1}/${list.total}]`})`);
        }
        if (e.size <= 0) traceFail(l.line, `${l.event}: an entry of size 0`);
        list.entries.push({ phys: e.physAddr, length: e.size, dma: e.devAddr });
        if (e.index < e.total) break;
        open.delete(k);
        const bounced = l.event === 'bounce_map_sg';
        const call: TracedCall = { line: list.line, cpu: l.cpu, dev: e.dev, kind: 'sg', bounced, entries: list.entries, exactLength: true };
        if (!bounced) actions.push({ line: list.line, what: 'map', call });
        else {
          // bounce_map_sg: its entries were each mapped by a bounce_map_single just before
          const at = takeBounceSingles(actions, single, call, key);
          if (at === undefined) traceFail(list.line, `bounce_map_sg [1/${e.total}]: its entries were not each mapped by a bounce_map_single before it`);
          call.line = at.line;
          actions.splice(at.index, 0, { line: call.line, what: 'map', call });
        }
        // keyed by its first page: intel_unmap_sg hands intel_unmap the list's first dma address
        // & PAGE_MASK, which is what unmap_single prints
        sg.set(key(e.dev, pageAlignDown(must(call.entries[0], 'a first entry').dma)), call);
        break;
      }
      case 'unmap_single': {
        const e = parseDmaUnmap(l);
        if (!keep(e.dev)) break;
        const ks = key(e.dev, e.devAddr);
        const kg = key(e.dev, pageAlignDown(e.devAddr));
        const s = single.get(ks);
        const g = s === undefined ? sg.get(kg) : undefined;
        if (s !== undefined) {
          single.delete(ks);
          const ent = must(s.entries[0], 'the entry of a single');
          if (e.size <= 0 || e.size > ent.length) traceFail(l.line, `unmap_single: size=${e.size} is not 1..${ent.length}, what the map_single on line ${s.line} can hold`);
          if (!s.bounced) ent.length = e.size;
          s.exactLength = true;
          s.unmapCpu = l.cpu;
          actions.push({ line: l.line, what: 'unmap', call: s });
        } else if (g !== undefined) {
          sg.delete(kg);
          g.unmapCpu = l.cpu;
          actions.push({ line: l.line, what: 'unmap', call: g });
          if (g.bounced) for (const x of g.entries.slice(1)) consume.add(key(e.dev, x.dma));
        } else if (consume.has(ks)) consume.delete(ks);
        else orphanUnmaps++;
        break;
      }
      default:
        // unmap_sg and bounce_unmap_single repeat the unmap_single before them
        break;
    }
  }
  for (const list of open.values()) traceFail(list.line, `the sg list of ${list.total} entries that begins here is cut short (the trace ends after ${list.entries.length})`);
  return { actions, orphanUnmaps };
}

/**
 * The bounce_map_single calls a bounce_map_sg repeats: the device's latest bounced singles, one
 * per entry with its DMA address, in order. Removes them; returns where the first one was.
 */
function takeBounceSingles(actions: TracedAction[], single: Map<string, TracedCall>, call: TracedCall, key: (dev: string, a: bigint) => string): { index: number; line: number } | undefined {
  const n = call.entries.length;
  const found: number[] = [];
  for (let k = actions.length - 1; k >= 0 && found.length < n; k--) {
    const a = must(actions[k], 'an action');
    if (a.what !== 'map' || a.call.dev !== call.dev || !a.call.bounced || a.call.kind !== 'single') continue;
    if (must(a.call.entries[0], 'the entry of a single').dma !== must(call.entries[n - 1 - found.length], 'an entry of the list').dma) return undefined;
    found.push(k);
  }
  if (found.length < n) return undefined;
  const at = must(found[found.length - 1], 'the first single found');
  const first = { index: at, line: must(actions[at], 'its action').call.line };
  // highest index first, so the others stay where they are
  for (const k of found) {
    single.delete(key(call.dev, must(must(actions[k], 'a found action').call.entries[0], 'its entry').dma));
    actions.splice(k, 1);
  }
  return first;
}

/** 6.1's iommu:map/unmap events, all of device `dev` (they name none), as calls. */
export function calls61(lines: readonly TraceLine[], dev: string): Reconstruction {
  const actions: TracedAction[] = [];
  const live = new Map<bigint, TracedCall>();
  /** per CPU: the call its last event was a map of, and where that call's IOVA range ends */
  const growing = new Map<number, { call: TracedCall; end: bigint }>();
  /** each run's map event: where a call split off by an unmap begins */
  const runLine = new Map<TracedEntry, number>();
  let orphanUnmaps = 0;
  for (const l of lines) {
    if (l.event === 'map') {
      const e = parseIommuMap(l);
      if (e.size <= 0) traceFail(l.line, 'map: size=0');
      const g = growing.get(l.cpu);
      const entry = { phys: e.paddr, length: e.size, dma: e.iova };
      runLine.set(entry, l.line);
      if (g !== undefined && g.end === e.iova) {
        g.call.entries.push(entry);
        g.call.kind = 'sg';
        g.end = e.iova + BigInt(e.size);
        continue;
      }
      const call: TracedCall = { line: l.line, cpu: l.cpu, dev, kind: 'single', bounced: false, entries: [entry], exactLength: false };
      actions.push({ line: l.line, what: 'map', call });
      live.set(e.iova, call);
      growing.set(l.cpu, { call, end: e.iova + BigInt(e.size) });
    } else if (l.event === 'unmap') {
      const e = parseIommuUnmap(l);
      if (e.size <= 0) traceFail(l.line, 'unmap: size=0');
      growing.delete(l.cpu);
      const call = live.get(e.iova);
      if (call === undefined) {
        orphanUnmaps++;
        continue;
      }
      // __iommu_dma_unmap: one unmap of the whole call's size
      const total = call.entries.reduce((n, x) => n + x.length, 0);
      if (e.size > total) traceFail(l.line, `unmap: size=${e.size} is more than the ${total} bytes mapped at consecutive IOVAs from line ${call.line}`);
      if (e.size < total) splitCall(l, e.size, call, actions, live, growing, runLine);
      live.delete(e.iova);
      for (const x of call.entries) runLine.delete(x);
      call.unmapCpu = l.cpu;
      actions.push({ line: l.line, what: 'unmap', call });
    }
  }
  return { actions, orphanUnmaps };
}

/**
 * An unmap of the first `size` bytes of a grouped call: those runs were the call, the rest
 * another one that began at the next IOVA, mapped where its first run's event is.
 */
function splitCall(l: TraceLine, size: number, call: TracedCall, actions: TracedAction[], live: Map<bigint, TracedCall>, growing: Map<number, { call: TracedCall; end: bigint }>, runLine: Map<TracedEntry, number>): void {
  let k = 0;
  let n = 0;
  while (n < size) n += must(call.entries[k++], 'an entry before size').length;
  if (n !== size) traceFail(l.line, `unmap: size=${size} ends inside the run mapped on line ${runLine.get(must(call.entries[k - 1], 'the last entry counted'))}`);
  const entries = call.entries.slice(k);
  const head = must(entries[0], 'an entry past the unmapped ones');
  const rest: TracedCall = { ...call, line: must(runLine.get(head), 'the line of its run'), kind: entries.length > 1 ? 'sg' : 'single', entries };
  call.entries = call.entries.slice(0, k);
  call.kind = k > 1 ? 'sg' : 'single';
  live.set(head.dma, rest);
  const g = growing.get(call.cpu);
  if (g !== undefined && g.call === call) g.call = rest;
  // actions are in line order: the rest's map goes before the first action after its line
  let lo = 0;
  let hi = actions.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (must(actions[mid], 'an action').line < rest.line) lo = mid + 1;
    else hi = mid;
  }
  actions.splice(lo, 0, { line: rest.line, what: 'map', call: rest });
}
