/**
 * dmadiff import-trace: a real driver's IOMMU trace as a dmadiff-scenario/1. Each DMA-API call the
 * events show becomes a step on the CPU the line names, its buffer relocated into the model's
 * buffer area (relocate.ts), with the IOVA the real kernel returned kept as the step's `traced`
 * result; what the trace cannot say is decided here and said in one line.
 */
import { MAX_ACCESS, ScenarioError } from '../fields.js';
import { parseScenario } from '../validation.js';
import { IOAPIC_RANGE_END, IOAPIC_RANGE_START, VTD_PAGE_SIZE } from '../../../vtd/regs.js';
import { hex, type Dir, type Scenario } from '../scenario.js';
import { formatBdf, parseBdf } from '../../../vtd/entries.js';
import type { NamedPlatform } from '../../search/property.js';
import { calls510, calls61, type Reconstruction, type TracedCall } from './calls.js';
import { readTraceLines, releaseOfEvent, traceFail, TraceImportError } from './ftrace.js';
import { Relocation } from './relocate.js';
import { must } from '../../../kernel/assert.js';

export interface ImportOptions {
  /** the file's name, recorded in the scenario */
  source: string;
  platform: NamedPlatform;
  /** 5.10: import only this device's events; 6.1: the device the events belong to ("bb:dd.f") */
  device?: string;
  dir: Dir;
  /** DMA mask bits, streaming and coherent */
  mask: number;
  /** a device read of each mapping after its map and before its unmap */
  touch: boolean;
}

export interface Imported {
  scenario: Scenario;
  /** one line: what was imported, what was skipped, what was assumed */
  summary: string;
}

/** 6.1's events name no device: the one they are taken to belong to without --device */
const DEFAULT_61_DEVICE = '00:02.0';

/** "0000:00:02.0" or "00:02.0" as the scenario's "bb:dd.f" (PCI domain 0 only: the model has one segment). */
function scenarioBdf(name: string): string | undefined {
  const sid = parseBdf(name.replace(/^0000:/, ''));
  return sid === undefined ? undefined : formatBdf(sid);
}

export function importTrace(text: string, o: ImportOptions): Imported {
  const want = o.device === undefined ? undefined : scenarioBdf(o.device);
  if (o.device !== undefined && want === undefined) throw new TraceImportError(`--device: expected a PCI address like 00:02.0 or 0000:00:02.0 (domain 0, device up to 1f), got "${o.device}"`);
  const lines = readTraceLines(text);
  const skipped = new Map<string, number>();
  const ours = lines.filter((l) => {
    if (releaseOfEvent(l.event) !== undefined) return true;
    skipped.set(l.event, (skipped.get(l.event) ?? 0) + 1);
    return false;
  });
  const first = ours[0];
  if (first === undefined) throw new TraceImportError(`no IOMMU map or unmap events (5.10's intel_iommu:* or 6.1's iommu:map/unmap) in ${lines.length} event line(s)`);
  const release = must(releaseOfEvent(first.event), 'the release of an event kept for it');
  const other = ours.find((l) => releaseOfEvent(l.event) !== release);
  if (other !== undefined) traceFail(other.line, `${other.event} is a ${releaseOfEvent(other.event)} event, but line ${first.line} began a ${release} trace`);
  let otherDevices = 0;
  const rec: Reconstruction =
    release === '5.10'
      ? calls510(ours, (dev) => {
          if (want === undefined || scenarioBdf(dev) === want) return true;
          otherDevices++;
          return false;
        })
      : calls61(ours, `0000:${want ?? DEFAULT_61_DEVICE}`);
  const maps = rec.actions.filter((a) => a.what === 'map').map((a) => a.call);
  if (maps.length === 0) throw new TraceImportError(`no map call${want !== undefined ? ` of device ${want}` : ''} in the trace`);

  // the real pages every call touches (below 2^52: ftrace.ts checked each event), then where they go
  const pfns: number[] = [];
  for (const c of maps) {
    for (const e of c.entries) {
      const p = Number(e.phys);
      for (let pfn = Math.floor(p / VTD_PAGE_SIZE); pfn * VTD_PAGE_SIZE < p + e.length; pfn++) pfns.push(pfn);
    }
  }
  let reloc: Relocation;
  try {
    reloc = new Relocation(pfns);
  } catch (e) {
    throw new TraceImportError(e instanceof Error ? e.message : String(e));
  }

  // devices in order of first appearance; an untrusted one shows by its bounce events
  const devices = new Map<string, { bdf: string; untrusted: boolean }>();
  for (const c of maps) {
    const bdf = scenarioBdf(c.dev);
    if (bdf === undefined) traceFail(c.line, `device ${c.dev} is not one the model can hold (PCI domain 0, device up to 1f)`);
    const d = devices.get(bdf) ?? { bdf, untrusted: false };
    d.untrusted ||= c.bounced;
    devices.set(bdf, d);
  }
  // a loop, not Math.max(...): one argument an action would overflow the stack on a long trace
  let maxCpu = 0;
  for (const a of rec.actions) maxCpu = Math.max(maxCpu, a.what === 'map' ? a.call.cpu : must(a.call.unmapCpu, 'the CPU of an unmap'));
  const name = (c: TracedCall): string => `L${c.line}`;
  const total = (c: TracedCall): number => c.entries.reduce((n, e) => n + e.length, 0);
  const touch = (c: TracedCall): unknown => ({ op: 'dma_read', map: name(c), offset: 0, len: Math.min(total(c), MAX_ACCESS) });
  const steps: unknown[] = [];
  for (const a of rec.actions) {
    const c = a.call;
    const dev = must(scenarioBdf(c.dev), 'the scenario device of a kept call');
    if (a.what === 'unmap') {
      if (o.touch) steps.push(touch(c));
      steps.push({ op: 'unmap', map: name(c), cpu: must(c.unmapCpu, 'the CPU of an unmap') });
      continue;
    }
    const phys = (e: { phys: bigint }): string => hex(reloc.toModel(Number(e.phys)));
    const e0 = must(c.entries[0], 'a first entry');
    if (c.kind === 'single') {
      steps.push({ op: 'map_page', dev, phys: phys(e0), size: e0.length, dir: o.dir, cpu: c.cpu, as: name(c), traced: { release, dma: hex(e0.dma) } });
    } else {
      const traced = release === '5.10' ? { release, dma: hex(e0.dma), segments: c.entries.map((e) => ({ dma: hex(e.dma), len: e.length })) } : { release, dma: hex(e0.dma) };
      steps.push({ op: 'map_sg', dev, dir: o.dir, sg: c.entries.map((e) => ({ phys: phys(e), length: e.length })), cpu: c.cpu, as: name(c), traced });
    }
    if (o.touch) steps.push(touch(c));
  }

  const sgCalls = maps.filter((c) => c.kind === 'sg').length;
  // 5.10 singles whose unmap never printed their length (6.1's are all whole pages, said below)
  const assumedLengths = release === '5.10' ? maps.filter((c) => !c.exactLength).length : 0;
  const parts = [
    `imported ${maps.length} call(s) (${maps.length - sgCalls} map_page, ${sgCalls} map_sg; ${rec.actions.length - maps.length} unmapped) of ${devices.size} device(s) from ${release} ${release === '5.10' ? 'intel_iommu' : 'iommu:map/unmap'} events`,
    `skipped ${[...skipped].map(([e, n]) => `${n} ${e}`).join(', ') || 'no other events'}${otherDevices > 0 ? `, ${otherDevices} event(s) of other devices` : ''}${rec.orphanUnmaps > 0 ? `, ${rec.orphanUnmaps} unmap(s) of mappings made before the trace began` : ''}`,
    `assumed: direction ${o.dir} (--dir)`,
    release === '5.10' ? 'map_single taken as dma_map_page' : 'iommu:map runs at consecutive IOVAs on one CPU taken as one call (one run: dma_map_page, more: dma_map_sg), unmaps matched by first IOVA (a smaller one splits the call)',
    ...(release === '6.1' ? ['offsets 0 and lengths whole pages (iommu:map prints the page-aligned range __iommu_dma_map mapped)'] : []),
    ...(release === '6.1' ? [`device ${want ?? DEFAULT_61_DEVICE}${want === undefined ? ' (--device)' : ''}`] : []),
    `${o.mask}-bit DMA masks (--mask)`,
    ...(assumedLengths > 0 ? [`${assumedLengths} never-unmapped map_single length(s) taken as their pages less the offset`] : []),
    `cpus ${Math.max(o.platform.platform.cpus, maxCpu + 1)} on platform ${o.platform.name} (--platform)`,
    `real pages relocated as ${reloc.runs.length} run(s) from ${hex(must(reloc.runs[0], 'a first run').model)} (offsets, contiguity, sharing and 2 MiB alignment kept)`,
  ];
  const summary = parts.join('; ');
  const json = {
    format: 'dmadiff-scenario/1',
    platform: { ...o.platform.platform, superpages: [...o.platform.platform.superpages], cpus: Math.max(o.platform.platform.cpus, maxCpu + 1) },
    devices: [...devices.values()].map((d) => ({ id: d.bdf, bdf: d.bdf, pci: true, untrusted: d.untrusted, dmaMask: o.mask, coherentMask: o.mask })),
    // both releases keep the IOAPIC/MSI window out of every domain (5.10 dmar_init_reserved_ranges,
    // 6.1 intel_iommu_get_resv_regions' IOMMU_RESV_MSI region)
    reserved: [{ start: hex(IOAPIC_RANGE_START), end: hex(IOAPIC_RANGE_END) }],
    steps,
    imported: { source: o.source, release, assumptions: summary, phys: reloc.runs.map((r) => ({ real: hex(r.real), model: hex(r.model), pages: r.pages })) },
  };
  try {
    return { scenario: parseScenario(json), summary };
  } catch (e) {
    // what the trace holds does not fit a scenario (a CPU number, a mask): say where
    if (e instanceof ScenarioError) throw new TraceImportError(`the imported scenario is not valid: ${e.message}`);
    throw e;
  }
}
