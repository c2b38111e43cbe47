/** sync_for_cpu and sync_for_device: dma_sync_single / dma_sync_sg of a live streaming mapping. */
import type { PathRunner, StepResult } from '../../run/path-runner.js';
import { compareOutcome } from '../../check/step-compare.js';
import type { StepOf } from '../scenario.js';
import { STREAMING, mappingField, type OpDescription } from './op.js';

function sync(r: PathRunner, step: StepOf<'sync_for_cpu'> | StepOf<'sync_for_device'>): StepResult {
  const m = r.mapping(step.map);
  if (!m.live) return { ok: false, error: `${m.name} is not mapped` };
  const forCpu = step.op === 'sync_for_cpu';
  if (m.kind === 'single') r.model.syncSingle(m.dev, m.dma, m.size, m.dir, forCpu);
  else r.model.syncSg(m.dev, m.sgt!, m.dir, forCpu);
  return { ok: true };
}

export const syncForCpu: OpDescription<'sync_for_cpu'> = {
  op: 'sync_for_cpu',
  fields: { map: mappingField(STREAMING) },
  generatedBy: ['sync', 'life'],
  parse: (r) => ({ op: 'sync_for_cpu', map: r.map(STREAMING) }),
  run: sync,
  describe: (s) => `sync_for_cpu ${s.map}`,
  compare: compareOutcome,
};

export const syncForDevice: OpDescription<'sync_for_device'> = {
  op: 'sync_for_device',
  fields: { map: mappingField(STREAMING) },
  generatedBy: ['sync', 'life'],
  parse: (r) => ({ op: 'sync_for_device', map: r.map(STREAMING) }),
  run: sync,
  describe: (s) => `sync_for_device ${s.map}`,
  compare: compareOutcome,
};
