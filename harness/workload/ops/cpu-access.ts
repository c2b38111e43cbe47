/** cpu_read and cpu_write: the CPU reads or fills physical memory directly (no DMA API call). */
import { PHYS_LIMIT } from '../../../vtd/regions.js';
import { addDivergence, compareOutcome, firstDiff, sameAccess } from '../../check/step-compare.js';
import { MAX_ACCESS, fail } from '../fields.js';
import { BYTE, INT, PHYS, type OpDescription } from './op.js';

export const cpuRead: OpDescription<'cpu_read'> = {
  op: 'cpu_read',
  fields: { phys: PHYS, len: INT },
  generatedBy: ['cpu', 'life'],
  // any memory may be read, the fixed regions too: only the machine's end bounds it
  parse: (r) => {
    const len = r.int('len', 1, MAX_ACCESS);
    const p = r.u64('phys');
    if (p + BigInt(len) > BigInt(PHYS_LIMIT)) fail(`${r.w}.phys`, 'is beyond physical memory (2^39)');
    return { op: 'cpu_read', phys: Number(p), len };
  },
  run: (r, step) => ({ ok: true, data: Buffer.from(r.model.machine.memory.read(step.phys, step.len)).toString('hex') }),
  describe: (s) => `cpu_read 0x${s.phys.toString(16)}+${s.len}`,
  compare: (out, i, step, l, g) => {
    if (!sameAccess(l, g)) addDivergence(out, i, step, 'cpu-memory', `CPU memory at 0x${step.phys.toString(16)} differs from byte ${firstDiff(l.data ?? '', g.data ?? '')}`, l, g);
  },
};

export const cpuWrite: OpDescription<'cpu_write'> = {
  op: 'cpu_write',
  fields: { phys: PHYS, len: INT, fill: BYTE },
  generatedBy: ['cpu', 'life'],
  parse: (r) => {
    const len = r.int('len', 1, MAX_ACCESS);
    return { op: 'cpu_write', phys: r.phys('phys', len), len, fill: r.int('fill', 0, 255) };
  },
  run: (r, step) => {
    r.model.machine.memory.fill(step.phys, step.len, step.fill);
    return { ok: true };
  },
  describe: (s) => `cpu_write 0x${s.phys.toString(16)}+${s.len}`,
  compare: compareOutcome,
};
