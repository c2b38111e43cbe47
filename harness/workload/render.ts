/** The readable text rendering of a dmadiff-result/1 document. */
import type { Divergence } from '../check/checker.js';
import type { StepResult } from '../run/path-runner.js';
import type { ResultDoc } from '../run/runner.js';
import type { ImportedFrom, Scenario, Step } from './scenario.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';

/** Where a relocated buffer address was on the traced machine (import-trace's runs), or undefined. */
function realAddress(imported: ImportedFrom | undefined, phys: number): number | undefined {
  for (const r of imported?.phys ?? []) {
    const model = Number(r.model);
    if (phys >= model && phys < model + r.pages * VTD_PAGE_SIZE) return Number(r.real) + (phys - model);
  }
  return undefined;
}

/** " (real 0x...)" for an imported scenario's buffer address */
function real(imported: ImportedFrom | undefined, phys: number): string {
  const r = realAddress(imported, phys);
  return r === undefined ? '' : ` (real 0x${r.toString(16)})`;
}

/** A step in one line; an imported scenario's buffers also by their real address. */
export function describeStep(s: Step, imported?: ImportedFrom): string {
  switch (s.op) {
    case 'map_page':
      return `map_page ${s.as} = ${s.dev} 0x${s.phys.toString(16)}+${s.size}${real(imported, s.phys)} ${s.dir}`;
    case 'map_sg':
      return `map_sg ${s.as} = ${s.dev} ${s.sg.length} entr${s.sg.length === 1 ? 'y' : 'ies'}${real(imported, s.sg[0]!.phys)} ${s.dir}`;
    case 'alloc_coherent':
      return `alloc_coherent ${s.as} = ${s.dev} ${s.size}`;
    case 'unmap':
    case 'free_coherent':
    case 'sync_for_cpu':
    case 'sync_for_device':
      return `${s.op} ${s.map}`;
    case 'dma_read':
    case 'dma_write':
      return `${s.op} ${s.map}[${s.offset}, +${s.len})`;
    case 'cpu_read':
    case 'cpu_write':
      return `${s.op} 0x${s.phys.toString(16)}+${s.len}`;
    case 'consumer_walk':
      return `consumer_walk ${s.map} by ${s.consumer}`;
    case 'flush_queue_timeout':
      return 'flush_queue_timeout';
    case 'set_dma_mask':
      return `set_dma_mask ${s.dev} ${s.bits} bits (${s.which})`;
    case 'set_max_seg_size':
      return `set_max_seg_size ${s.dev} ${s.size}`;
    case 'set_seg_boundary':
      return `set_seg_boundary ${s.dev} 0x${s.mask.toString(16)}`;
  }
}

export function describeResult(r: StepResult): string {
  if (r.error !== undefined) return `error: ${r.error}`;
  if (!r.ok) return r.fault !== undefined ? `FAULT ${r.fault.reason} ${r.fault.type} at ${r.fault.addr}` : 'failed';
  if (r.segments !== undefined) return `${r.count} seg: ${r.segments.map((x) => `${x.dma}+${x.len}`).join(' ')}`;
  if (r.data !== undefined) return `${r.data.length / 2} bytes ${r.data.slice(0, 32)}${r.data.length > 32 ? '...' : ''}`;
  return r.dma !== undefined ? `ok ${r.dma}` : 'ok';
}

export function renderDivergence(d: Divergence): string {
  const tag = d.allowlisted !== undefined ? `allowlisted ${d.allowlisted}` : 'DIVERGENCE';
  return `step ${d.step}: ${tag} [${d.kind}] ${d.detail}`;
}

export function renderText(s: Scenario, doc: ResultDoc): string {
  const lines: string[] = [];
  const l = doc.paths['legacy-intel'].steps;
  const g = doc.paths['dma-iommu'].steps;
  s.steps.forEach((st, i) => {
    lines.push(`#${i} ${describeStep(st, s.imported)}`);
    lines.push(`    legacy-intel (5.10): ${describeResult(l[i]!)}`);
    lines.push(`    dma-iommu    (6.1):  ${describeResult(g[i]!)}`);
    for (const d of doc.divergences) if (d.step === i) lines.push(`    ${renderDivergence(d)}`);
  });
  for (const d of doc.divergences) if (d.step >= s.steps.length) lines.push(renderDivergence(d));
  const n = doc.divergences.length;
  const allowed = doc.divergences.filter((d) => d.allowlisted !== undefined).length;
  lines.push(`${s.steps.length} steps, ${n} divergence(s), ${allowed} allowlisted`);
  return lines.join('\n');
}
