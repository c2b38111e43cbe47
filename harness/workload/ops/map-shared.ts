/**
 * What the ops that make a mapping share: the direction, the traced result an imported step
 * carries, a buffer's real address in an imported scenario, and the comparison of a handle.
 */
import { DmaDirection } from '../../../kernel/device.js';
import { VTD_PAGE_SIZE } from '../../../vtd/regs.js';
import { addDivergence, brief } from '../../check/step-compare.js';
import type { CheckOptions, Divergence } from '../../check/checker.js';
import type { StepResult } from '../../run/path-runner.js';
import { MAX_BUFFER, MAX_SG_ENTRIES, RELEASES, fail, hexText, int, isObj, oneOf, onlyKeys, type Obj } from '../fields.js';
import type { FieldSpec } from './op.js';
import type { Dir, ImportedFrom, StepOf, TracedResult } from '../scenario.js';

export const DIRS: readonly Dir[] = ['to_device', 'from_device', 'bidirectional'];

export const DIR: FieldSpec = { type: 'dir', required: true };
export const TRACED: FieldSpec = { type: 'traced', required: false };

export function toDirection(d: Dir): DmaDirection {
  return d === 'to_device' ? DmaDirection.ToDevice : d === 'from_device' ? DmaDirection.FromDevice : DmaDirection.Bidirectional;
}

/** A map step's optional `traced` result (dmadiff import-trace); sg: 5.10's segments may be there. */
export function traced(s: Obj, w: string, sg: boolean): { traced?: TracedResult } {
  const t = s['traced'];
  if (t === undefined) return {};
  const wt = `${w}.traced`;
  if (!isObj(t)) fail(wt, 'expected an object');
  onlyKeys(t, wt, sg ? ['release', 'dma', 'segments'] : ['release', 'dma']);
  const out: TracedResult = { release: oneOf(t, 'release', wt, RELEASES), dma: hexText(t, 'dma', wt) };
  if (t['segments'] !== undefined) {
    const segs = t['segments'];
    if (!Array.isArray(segs) || segs.length === 0 || segs.length > MAX_SG_ENTRIES) fail(`${wt}.segments`, `expected 1..${MAX_SG_ENTRIES} segments`);
    out.segments = segs.map((g, j) => {
      const wg = `${wt}.segments[${j}]`;
      if (!isObj(g)) fail(wg, 'expected an object');
      onlyKeys(g, wg, ['dma', 'len']);
      return { dma: hexText(g, 'dma', wg), len: int(g, 'len', wg, 1, MAX_BUFFER) };
    });
  }
  return { traced: out };
}

/** Where a relocated buffer address was on the traced machine (import-trace's runs), or undefined. */
function realAddress(imported: ImportedFrom | undefined, phys: number): number | undefined {
  for (const r of imported?.phys ?? []) {
    const model = Number(r.model);
    if (phys >= model && phys < model + r.pages * VTD_PAGE_SIZE) return Number(r.real) + (phys - model);
  }
  return undefined;
}

/** " (real 0x...)" for an imported scenario's buffer address */
export function real(imported: ImportedFrom | undefined, phys: number): string {
  const r = realAddress(imported, phys);
  return r === undefined ? '' : ` (real 0x${r.toString(16)})`;
}

/** map_page and alloc_coherent: the same outcome, and under --strict-iova the same handle. */
export function compareHandle(out: Divergence[], i: number, step: StepOf<'map_page'> | StepOf<'alloc_coherent'>, l: StepResult, g: StepResult, _lr: unknown, _gr: unknown, opts: CheckOptions): void {
  if (l.ok !== g.ok) addDivergence(out, i, step, 'outcome', `${step.op} of ${step.size} bytes: legacy ${brief(l)}, generic ${brief(g)}`, l, g);
  else if (l.ok && opts.strictIova && l.dma !== g.dma) addDivergence(out, i, step, 'iova', `${step.op} returned ${l.dma} on legacy, ${g.dma} on generic`, l, g);
}
