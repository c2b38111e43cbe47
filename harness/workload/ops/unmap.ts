/**
 * unmap and free_coherent: the end of a mapping (dma_unmap_page / dma_unmap_sg by the kind of
 * mapping the step names, dma_free_coherent).
 */
import type { PathRunner, StepResult } from '../../run/path-runner.js';
import { compareOutcome } from '../../check/step-compare.js';
import type { StepOf } from '../scenario.js';
import { CPU, STREAMING, mappingField, type OpDescription } from './op.js';

const COHERENT = ['coherent'] as const;

/** The mapping ended as its kind says; a failed or ended one is an error of the step. */
function release(r: PathRunner, step: StepOf<'unmap'> | StepOf<'free_coherent'>): StepResult {
  const m = r.mapping(step.map);
  if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
  if (!m.live) return { ok: false, error: `${m.name} is already unmapped` };
  m.live = false;
  const model = r.model;
  if (m.kind === 'coherent') r.coherentGeneration++;
  if (m.kind === 'single') model.unmapPage(m.dev, m.dma, m.size, m.dir, step.cpu);
  else if (m.kind === 'sg') model.unmapSg(m.dev, m.sgt!, m.dir, step.cpu);
  else model.freeCoherent(m.dev, m.coherent!, step.cpu);
  return { ok: true };
}

export const unmap: OpDescription<'unmap'> = {
  op: 'unmap',
  fields: { map: mappingField(STREAMING), cpu: CPU },
  generatedBy: ['unmap', 'churn', 'fill', 'life'],
  parse: (r) => ({ op: 'unmap', map: r.map(STREAMING), cpu: r.cpu() }),
  run: release,
  describe: (s) => `unmap ${s.map}`,
  compare: compareOutcome,
};

export const freeCoherent: OpDescription<'free_coherent'> = {
  op: 'free_coherent',
  fields: { map: mappingField(COHERENT), cpu: CPU },
  generatedBy: ['free'],
  parse: (r) => ({ op: 'free_coherent', map: r.map(COHERENT), cpu: r.cpu() }),
  run: release,
  describe: (s) => `free_coherent ${s.map}`,
  compare: compareOutcome,
};
