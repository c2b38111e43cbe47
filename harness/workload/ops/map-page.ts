/** map_page: dma_map_page of one buffer; the step names the mapping it makes (`as`). */
import { DMA_MAPPING_ERROR } from '../../../kernel/device.js';
import { MAX_BUFFER } from '../fields.js';
import { hex } from '../scenario.js';
import { CPU, DEVICE, INT, NEW_MAPPING, PHYS, type OpDescription } from './op.js';
import { DIR, DIRS, TRACED, compareHandle, real, toDirection, traced } from './map-shared.js';

export const mapPage: OpDescription<'map_page'> = {
  op: 'map_page',
  fields: { dev: DEVICE, phys: PHYS, size: INT, dir: DIR, cpu: CPU, as: NEW_MAPPING, traced: TRACED },
  generatedBy: ['map_page', 'churn', 'fill', 'life'],
  parse: (r) => {
    const size = r.int('size', 1, MAX_BUFFER);
    return { op: 'map_page', dev: r.dev(), phys: r.phys('phys', size), size, dir: r.oneOf('dir', DIRS), cpu: r.cpu(), as: r.as('single'), ...traced(r.s, r.w, false) };
  },
  run: (r, step) => {
    const model = r.model;
    const dev = model.device(step.dev);
    const dir = toDirection(step.dir);
    const dma = model.mapPage(dev, step.phys, step.size, dir, step.cpu);
    const ok = dma !== DMA_MAPPING_ERROR;
    r.mappings.set(step.as, { name: step.as, kind: 'single', dev, dir, ok, live: ok, dma, size: step.size, phys: step.phys, count: 0 });
    return ok ? { ok, dma: hex(dma) } : { ok };
  },
  describe: (s, imported) => `map_page ${s.as} = ${s.dev} 0x${s.phys.toString(16)}+${s.size}${real(imported, s.phys)} ${s.dir}`,
  compare: compareHandle,
};
