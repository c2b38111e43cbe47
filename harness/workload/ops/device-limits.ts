/**
 * set_dma_mask, set_max_seg_size and set_seg_boundary: a driver changes its device's DMA limits
 * (dma_set_mask_and_coherent and its halves, dma_set_max_seg_size, dma_set_seg_boundary).
 */
import { EIO, errnoName } from '../../../kernel/bits.js';
import { dmaBitMask } from '../../../kernel/device.js';
import { compareOutcome } from '../../check/step-compare.js';
import type { MaskWhich } from '../scenario.js';
import { DEVICE, INT, type OpDescription } from './op.js';

const WHICH: readonly MaskWhich[] = ['both', 'streaming', 'coherent'];

export const setDmaMask: OpDescription<'set_dma_mask'> = {
  op: 'set_dma_mask',
  fields: { dev: DEVICE, bits: INT, which: { type: 'mask-which', required: false } },
  generatedBy: ['mask'],
  parse: (r) => ({ op: 'set_dma_mask', dev: r.dev(), bits: r.int('bits', 1, 64), which: r.oneOf('which', WHICH, 'both') }),
  run: (r, step) => {
    const model = r.model;
    const dev = model.device(step.dev);
    const mask = dmaBitMask(step.bits);
    // dma_set_mask_and_coherent: the coherent mask only if the streaming one was accepted
    let ok = true;
    if (step.which !== 'coherent') ok = model.setDmaMask(dev, mask);
    if (ok && step.which !== 'streaming') ok = model.setCoherentMask(dev, mask);
    return ok ? { ok } : { ok, error: errnoName(-EIO) };
  },
  describe: (s) => `set_dma_mask ${s.dev} ${s.bits} bits (${s.which})`,
  compare: compareOutcome,
};

export const setMaxSegSize: OpDescription<'set_max_seg_size'> = {
  op: 'set_max_seg_size',
  fields: { dev: DEVICE, size: INT },
  generatedBy: ['maxseg'],
  parse: (r) => ({ op: 'set_max_seg_size', dev: r.dev(), size: r.int('size', 1, 0xffff_ffff) }),
  run: (r, step) => {
    r.model.device(step.dev).maxSegSize = step.size;
    return { ok: true };
  },
  describe: (s) => `set_max_seg_size ${s.dev} ${s.size}`,
  compare: compareOutcome,
};

export const setSegBoundary: OpDescription<'set_seg_boundary'> = {
  op: 'set_seg_boundary',
  fields: { dev: DEVICE, mask: { type: 'boundary-mask', required: true } },
  generatedBy: ['boundary'],
  parse: (r) => ({ op: 'set_seg_boundary', dev: r.dev(), mask: r.boundaryMask('mask') }),
  run: (r, step) => {
    r.model.device(step.dev).segBoundaryMask = step.mask;
    return { ok: true };
  },
  describe: (s) => `set_seg_boundary ${s.dev} 0x${s.mask.toString(16)}`,
  compare: compareOutcome,
};
