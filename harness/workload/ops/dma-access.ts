/**
 * dma_read and dma_write: the device reads or writes [offset, offset + len) of a mapping, through
 * the addresses this path returned. An access outside the buffer, or of an ended mapping, is an
 * exposure probe: a difference there says what a device could reach, not what it was given.
 */
import { must } from '../../../kernel/assert.js';
import { iovaOffset, iovaPfn, pageAlignDown } from '../../../kernel/bits.js';
import type { Divergence, DivergenceKind, ProbePage } from '../../check/checker.js';
import { addDivergence, brief, firstDiff, sameAccess } from '../../check/step-compare.js';
import type { Mapping, PathRunner, StepResult } from '../../run/path-runner.js';
import type { DeviceAccessPiece } from '../consumers.js';
import { MAX_ACCESS, ScenarioError } from '../fields.js';
import { hex, type StepOf } from '../scenario.js';
import { BYTE, INT, mappingField, type CompareFn, type OpDescription } from './op.js';

type Access = StepOf<'dma_read'> | StepOf<'dma_write'>;

const ANY = ['single', 'sg', 'coherent'] as const;

/** The device-side pieces of the access, each inside the 64 bits of a device address. */
function accessPieces(r: PathRunner, m: Mapping, step: Access, i: number): DeviceAccessPiece[] {
  const pieces = r.pieces(m, step.offset, step.len);
  // a device address is 64 bits: an access that leaves them is not a probe but a bad step
  for (const p of pieces) {
    if (p.iova < 0n || p.iova + BigInt(p.len) > 1n << 64n) {
      throw new ScenarioError(`steps[${i}].offset: ${step.offset} from ${m.name} gives the device address ${p.iova < 0n ? `-${hex(-p.iova)}` : hex(p.iova)} (+${p.len}), outside 64 bits`);
    }
  }
  return pieces;
}

/** Whether an access of a mapping touches bytes outside the buffer or a dead mapping. */
function isExposureProbe(m: Mapping, offset: number, len: number): boolean {
  return !m.live || offset < 0 || offset + len > m.size;
}

/** Page by page, where the device went on one path: the page it reached (IOTLB included) and the one the table holds. */
function probePages(r: PathRunner, m: Mapping, pieces: readonly DeviceAccessPiece[]): ProbePage[] {
  const out: ProbePage[] = [];
  let at = 0;
  for (const p of pieces) {
    let a = p.iova;
    let left = p.len;
    while (left > 0) {
      const n = Math.min(left, 4096 - iovaOffset(a));
      const page = pageAlignDown(a);
      const reached = r.model.machine.hw.peek(m.dev.sid, iovaPfn(page), false);
      const w = r.model.iovaToPhys(m.dev, page);
      out.push({ iova: page, at, n, reached, mapped: w === 0n ? -1 : iovaPfn(w) });
      at += n;
      left -= n;
      a += BigInt(n);
    }
  }
  return out;
}

/** The same bytes or the same fault; a probe's divergence also carries where each device went. */
const compareAccess: CompareFn<Access> = (out: Divergence[], i: number, step: Access, l: StepResult, g: StepResult, lr: PathRunner, gr: PathRunner) => {
  if (sameAccess(l, g)) return;
  const m = must(lr.mappings.get(step.map), `legacy's mapping ${step.map}`);
  const what = step.op === 'dma_read' ? 'device read' : 'device write';
  const where = `${step.map}[${step.offset}, +${step.len})`;
  const kind: DivergenceKind = isExposureProbe(m, step.offset, step.len) ? 'exposure' : step.op === 'dma_read' ? 'device-read' : 'device-write';
  if (l.ok && g.ok && l.data !== undefined && g.data !== undefined) {
    addDivergence(out, i, step, kind, `${what} of ${where} returns different bytes from byte ${firstDiff(l.data, g.data)}`, l, g);
  } else {
    addDivergence(out, i, step, kind, `${what} of ${where}: legacy ${brief(l)}, generic ${brief(g)}`, l, g);
  }
  const gm = must(gr.mappings.get(step.map), `generic's mapping ${step.map}`);
  // where each path's device went, for predicates that need the addresses (a mapping that
  // failed on one side has no addresses there: that is an outcome divergence of its own)
  if (kind === 'exposure' && m.ok && gm.ok) {
    const d = must(out[out.length - 1], 'the divergence just added');
    d.probe = { legacy: lr.pieces(m, step.offset, step.len), generic: gr.pieces(gm, step.offset, step.len) };
    if (step.op === 'dma_read' && l.ok && g.ok) d.probePages = { legacy: probePages(lr, m, d.probe.legacy), generic: probePages(gr, gm, d.probe.generic) };
  }
};

export const dmaRead: OpDescription<'dma_read'> = {
  op: 'dma_read',
  fields: { map: mappingField(ANY), offset: { type: 'offset', required: true }, len: INT },
  generatedBy: ['access', 'life'],
  parse: (r) => ({ op: 'dma_read', map: r.map(ANY), offset: r.offset(), len: r.int('len', 1, MAX_ACCESS) }),
  run: (r, step, i) => {
    const m = r.mapping(step.map);
    if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
    return r.deviceRead(m.dev, accessPieces(r, m, step, i));
  },
  describe: (s) => `dma_read ${s.map}[${s.offset}, +${s.len})`,
  compare: compareAccess,
};

export const dmaWrite: OpDescription<'dma_write'> = {
  op: 'dma_write',
  fields: { map: mappingField(ANY), offset: { type: 'offset', required: true }, len: INT, fill: BYTE },
  generatedBy: ['access', 'life'],
  parse: (r) => ({ op: 'dma_write', map: r.map(ANY), offset: r.offset(), len: r.int('len', 1, MAX_ACCESS), fill: r.int('fill', 0, 255) }),
  run: (r, step, i) => {
    const m = r.mapping(step.map);
    if (!m.ok) return { ok: false, error: `${m.name} was never mapped` };
    return r.deviceWrite(m.dev, accessPieces(r, m, step, i), step.fill);
  },
  describe: (s) => `dma_write ${s.map}[${s.offset}, +${s.len})`,
  compare: compareAccess,
};
