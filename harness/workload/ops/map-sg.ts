/**
 * map_sg: dma_map_sg of a list of buffers. Besides the comparison here, each path's list is
 * checked against the rules of a mapped list on its own (check/sg-result.ts).
 */
import { must } from '../../../kernel/assert.js';
import { sgFromBuffers } from '../../../kernel/scatterlist.js';
import { addDivergence, brief } from '../../check/step-compare.js';
import { MAX_BUFFER, MAX_SG_ENTRIES, fail, int, isObj, onlyKeys, physRange } from '../fields.js';
import { hex } from '../scenario.js';
import { CPU, DEVICE, NEW_MAPPING, type OpDescription } from './op.js';
import { DIR, DIRS, TRACED, real, toDirection, traced } from './map-shared.js';

export const mapSg: OpDescription<'map_sg'> = {
  op: 'map_sg',
  fields: { dev: DEVICE, dir: DIR, sg: { type: 'sg', required: true }, cpu: CPU, as: NEW_MAPPING, traced: TRACED },
  generatedBy: ['map_sg', 'life'],
  parse: (r) => {
    const { s, w } = r;
    const sg = s['sg'];
    if (!Array.isArray(sg) || sg.length === 0 || sg.length > MAX_SG_ENTRIES) fail(`${w}.sg`, `expected 1..${MAX_SG_ENTRIES} entries`);
    const entries = sg.map((e, j) => {
      const we = `${w}.sg[${j}]`;
      if (!isObj(e)) fail(we, 'expected an object');
      onlyKeys(e, we, ['phys', 'length']);
      const length = int(e, 'length', we, 1, MAX_BUFFER);
      return { phys: physRange(e, 'phys', we, length), length };
    });
    return { op: 'map_sg', dev: r.dev(), dir: r.oneOf('dir', DIRS), sg: entries, cpu: r.cpu(), as: r.as('sg'), ...traced(s, w, true) };
  },
  run: (r, step) => {
    const model = r.model;
    const dev = model.device(step.dev);
    const dir = toDirection(step.dir);
    const sgt = sgFromBuffers(step.sg);
    const count = model.mapSg(dev, sgt, dir, step.cpu);
    const ok = count > 0;
    r.mappings.set(step.as, {
      name: step.as,
      kind: 'sg',
      dev,
      dir,
      ok,
      live: ok,
      dma: 0n,
      size: step.sg.reduce((a, e) => a + e.length, 0),
      phys: 0,
      sgt,
      count,
      entries: step.sg,
      segBoundaryMask: dev.segBoundaryMask,
      maxSegSize: dev.maxSegSize,
    });
    if (!ok) return { ok };
    return { ok, count, segments: sgt.sgl.slice(0, count).map((s) => ({ dma: hex(s.dmaAddress), len: s.dmaLength })) };
  },
  describe: (s, imported) => `map_sg ${s.as} = ${s.dev} ${s.sg.length} entr${s.sg.length === 1 ? 'y' : 'ies'}${real(imported, must(s.sg[0], 'a first sg entry').phys)} ${s.dir}`,
  compare: (out, i, step, l, g, _lr, _gr, opts) => {
    if (l.ok !== g.ok) addDivergence(out, i, step, 'outcome', `dma_map_sg of ${step.sg.length} entries: legacy ${brief(l)}, generic ${brief(g)}`, l, g);
    else if (l.ok && l.count !== g.count) addDivergence(out, i, step, 'sg-count', `dma_map_sg returned ${l.count} segment(s) on legacy, ${g.count} on generic`, l, g);
    else if (l.ok && opts.strictIova && JSON.stringify(l.segments) !== JSON.stringify(g.segments)) addDivergence(out, i, step, 'iova', 'map_sg segment addresses differ', l, g);
  },
};
