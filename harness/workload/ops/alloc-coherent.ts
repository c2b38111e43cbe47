/** alloc_coherent: dma_alloc_coherent of a buffer; the step names the mapping it makes (`as`). */
import { DMA_MAPPING_ERROR, DmaDirection } from '../../../kernel/device.js';
import type { Mapping } from '../../run/path-runner.js';
import { MAX_BUFFER } from '../fields.js';
import { hex } from '../scenario.js';
import { CPU, DEVICE, INT, NEW_MAPPING, type OpDescription } from './op.js';
import { compareHandle } from './map-shared.js';

export const allocCoherent: OpDescription<'alloc_coherent'> = {
  op: 'alloc_coherent',
  fields: { dev: DEVICE, size: INT, cpu: CPU, as: NEW_MAPPING },
  generatedBy: ['alloc'],
  parse: (r) => ({ op: 'alloc_coherent', dev: r.dev(), size: r.int('size', 1, MAX_BUFFER), cpu: r.cpu(), as: r.as('coherent') }),
  run: (r, step) => {
    r.coherentGeneration++;
    const model = r.model;
    const dev = model.device(step.dev);
    const buf = model.allocCoherent(dev, step.size, step.cpu);
    const ok = buf !== null;
    const dma = buf?.handle ?? DMA_MAPPING_ERROR;
    const m: Mapping = { name: step.as, kind: 'coherent', dev, dir: DmaDirection.Bidirectional, ok, live: ok, dma, size: step.size, phys: 0, count: 0 };
    if (buf !== null) m.coherent = buf;
    r.mappings.set(step.as, m);
    return ok ? { ok, dma: hex(dma) } : { ok };
  },
  describe: (s) => `alloc_coherent ${s.as} = ${s.dev} ${s.size}`,
  compare: compareHandle,
};
