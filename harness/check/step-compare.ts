/**
 * What the per-step comparisons of the ops (workload/ops/) share: when two observations are the
 * same, how a result reads in a divergence's one line, and how a divergence of a step is made.
 */
import type { StepResult } from '../run/path-runner.js';
import type { Step } from '../workload/scenario.js';
import type { Divergence, DivergenceKind } from './checker.js';

/**
 * The fault a device sees, normalised: an address beyond the width (reason 0x04) and an
 * unmapped one (0x06 read, 0x05 write) both mean nothing is there. Which one a probe past a
 * buffer hits depends on where each path placed the IOVA (near the top of the width or not),
 * and IOVA placement is not compared.
 */
function faultClass(r: StepResult): string | undefined {
  const f = r.fault;
  if (f === undefined) return undefined;
  const reason = f.reason === '0x04' ? (f.type === 'read' ? '0x06' : '0x05') : f.reason;
  return `${reason}/${f.type}`;
}

function sameFault(a: StepResult, b: StepResult): boolean {
  return faultClass(a) === faultClass(b);
}

/** device and CPU observations are equal: same bytes, or the same fault reason and type */
export function sameAccess(a: StepResult, b: StepResult): boolean {
  if (a.ok !== b.ok) return false;
  if (a.ok) return a.data === b.data && a.error === b.error;
  return sameFault(a, b) && a.error === b.error;
}

/** A result in a few words, for a divergence's line. */
export function brief(r: StepResult): string {
  if (r.error !== undefined) return `error ${r.error}`;
  if (!r.ok) return r.fault !== undefined ? `fault ${r.fault.reason} (${r.fault.type})` : 'failed';
  if (r.data !== undefined) return `${r.data.length / 2} bytes`;
  if (r.count !== undefined) return `${r.count} segment(s)`;
  return r.dma !== undefined ? `ok ${r.dma}` : 'ok';
}

/**
 * The first byte at which two hex strings of read data differ (the length of the shorter if one
 * is a prefix of the other). A common-prefix scan: a diff package would compute a whole edit
 * script to answer this (diffChars is O(N*D) where this is O(N), and the strings reach 32 M
 * characters), and none has a prefix-length helper worth a dependency.
 */
export function firstDiff(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return Math.floor(i / 2);
}

/** A divergence of step i, with the mapping the step makes or names. */
export function addDivergence(out: Divergence[], i: number, step: Step, kind: DivergenceKind, detail: string, l: StepResult, g: StepResult): void {
  const map = 'as' in step ? step.as : 'map' in step ? step.map : undefined;
  out.push({ step: i, kind, detail, legacy: l, generic: g, ...(map !== undefined ? { map } : {}) });
}

/** The comparison of a step whose only observation is its outcome: ok, or the same error. */
export function compareOutcome(out: Divergence[], i: number, step: Step, l: StepResult, g: StepResult): void {
  if (l.ok !== g.ok || l.error !== g.error) addDivergence(out, i, step, 'outcome', `${step.op}: legacy ${brief(l)}, generic ${brief(g)}`, l, g);
}
