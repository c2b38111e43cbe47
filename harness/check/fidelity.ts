/**
 * An imported step against the real kernel it was traced on (dmadiff import-trace): the model
 * of that release must return what the kernel returned -- the handle of a map_page, every segment
 * of a 5.10 map_sg, where a 6.1 map_sg's IOVA range begins. A difference is a `fidelity`
 * divergence of that path: the model, not the migration, is wrong.
 */
import type { Divergence } from './checker.js';
import type { StepResult } from '../run/path-runner.js';
import type { Step } from '../workload/scenario.js';

const same = (a: string | undefined, b: string): boolean => a !== undefined && BigInt(a) === BigInt(b);

type TracedStep = Extract<Step, { op: 'map_page' | 'map_sg' }>;

/** What the model returned, in the form the trace `t` gives, or why it is not comparable. */
function mismatch(step: TracedStep, t: NonNullable<TracedStep['traced']>, r: StepResult): string | null {
  if (!r.ok) return `failed (${r.error ?? 'no mapping'})`;
  if (step.op === 'map_page') return same(r.dma, t.dma) ? null : `returned ${r.dma ?? 'nothing'}`;
  const segs = r.segments ?? [];
  if (t.segments === undefined) return same(segs[0]?.dma, t.dma) ? null : `began at ${segs[0]?.dma ?? 'nothing'}`;
  const ok = segs.length === t.segments.length && t.segments.every((g, k) => same(segs[k].dma, g.dma) && segs[k].len === g.len);
  return ok ? null : `returned ${segs.length} segment(s) ${segs.map((g) => `${g.dma}+${g.len}`).join(' ')}`;
}

export function checkTraced(i: number, step: Step, l: StepResult, g: StepResult): Divergence[] {
  if ((step.op !== 'map_page' && step.op !== 'map_sg') || step.traced === undefined) return [];
  const t = step.traced;
  const path = t.release === '5.10' ? 'legacy-intel' : 'dma-iommu';
  const bad = mismatch(step, t, path === 'legacy-intel' ? l : g);
  if (bad === null) return [];
  const kernel = t.segments !== undefined ? `${t.segments.length} segment(s) ${t.segments.map((x) => `${x.dma}+${x.len}`).join(' ')}` : t.dma;
  const said = { traced: kernel, model: bad };
  return [
    {
      step: i,
      kind: 'fidelity',
      path,
      map: step.as,
      detail: `the model of ${t.release} (${path}) ${bad} where the traced ${t.release} kernel returned ${kernel}`,
      legacy: path === 'legacy-intel' ? said : 'not traced',
      generic: path === 'dma-iommu' ? said : 'not traced',
    },
  ];
}
