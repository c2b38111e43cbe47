/** The readable text rendering of a dmadiff-result/1 document. */
import { must } from '../../kernel/assert.js';
import type { Divergence } from '../check/checker.js';
import type { StepResult } from '../run/path-runner.js';
import type { ResultDoc } from '../run/runner.js';
import type { ImportedFrom, Scenario, Step } from './scenario.js';
import { describeOpStep } from './ops/registry.js';

/** A step in one line; an imported scenario's buffers also by their real address (its op's describe). */
export function describeStep(s: Step, imported?: ImportedFrom): string {
  return describeOpStep(s.op, s, imported);
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
    lines.push(`    legacy-intel (5.10): ${describeResult(must(l[i], 'a legacy result of every step'))}`);
    lines.push(`    dma-iommu    (6.1):  ${describeResult(must(g[i], 'a generic result of every step'))}`);
    for (const d of doc.divergences) if (d.step === i) lines.push(`    ${renderDivergence(d)}`);
  });
  for (const d of doc.divergences) if (d.step >= s.steps.length) lines.push(renderDivergence(d));
  const n = doc.divergences.length;
  const allowed = doc.divergences.filter((d) => d.allowlisted !== undefined).length;
  lines.push(`${s.steps.length} steps, ${n} divergence(s), ${allowed} allowlisted`);
  return lines.join('\n');
}
