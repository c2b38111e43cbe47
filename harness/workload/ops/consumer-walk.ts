/** consumer_walk: a driver's iterator turns a mapped list into device reads (consumers.ts). */
import { addDivergence, brief, firstDiff, sameAccess } from '../../check/step-compare.js';
import { consumerAccesses } from '../consumers.js';
import { CONSUMERS } from '../scenario.js';
import { mappingField, type OpDescription } from './op.js';

const SG = ['sg'] as const;

export const consumerWalk: OpDescription<'consumer_walk'> = {
  op: 'consumer_walk',
  fields: { map: mappingField(SG), consumer: { type: 'consumer', required: true } },
  generatedBy: ['walk'],
  parse: (r) => ({ op: 'consumer_walk', map: r.map(SG), consumer: r.oneOf('consumer', CONSUMERS) }),
  run: (r, step) => {
    const m = r.mapping(step.map);
    if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
    return r.deviceRead(m.dev, consumerAccesses(step.consumer, m.sgt!.sgl, m.count));
  },
  describe: (s) => `consumer_walk ${s.map} by ${s.consumer}`,
  compare: (out, i, step, l, g) => {
    if (sameAccess(l, g)) return;
    const who = `the ${step.consumer} consumer programming the device from ${step.map}`;
    if (l.ok && g.ok) addDivergence(out, i, step, 'consumer', `${who} reads different bytes from byte ${firstDiff(l.data ?? '', g.data ?? '')}`, l, g);
    else addDivergence(out, i, step, 'consumer', `${who}: legacy ${brief(l)}, generic ${brief(g)}`, l, g);
  },
};
