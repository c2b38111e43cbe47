/**
 * Every scenario operation by name, and the dispatch through it: one lookup per step, each
 * description called with its own step type.
 */
import type { CheckOptions, Divergence } from '../../check/checker.js';
import type { PathRunner, StepResult } from '../../run/path-runner.js';
import type { ImportedFrom, Op, StepOf } from '../scenario.js';
import { allocCoherent } from './alloc-coherent.js';
import { consumerWalk } from './consumer-walk.js';
import { cpuRead, cpuWrite } from './cpu-access.js';
import { setDmaMask, setMaxSegSize, setSegBoundary } from './device-limits.js';
import { dmaRead, dmaWrite } from './dma-access.js';
import { flushQueueTimeout } from './flush-queue-timeout.js';
import { mapPage } from './map-page.js';
import { mapSg } from './map-sg.js';
import type { OpDescription } from './op.js';
import { syncForCpu, syncForDevice } from './sync.js';
import { freeCoherent, unmap } from './unmap.js';

export type OpTable = { readonly [O in Op]: OpDescription<O> };

/** In DESIGN.md's order of the op table. */
export const OPS: OpTable = {
  map_page: mapPage,
  map_sg: mapSg,
  unmap,
  alloc_coherent: allocCoherent,
  free_coherent: freeCoherent,
  sync_for_cpu: syncForCpu,
  sync_for_device: syncForDevice,
  dma_read: dmaRead,
  dma_write: dmaWrite,
  cpu_read: cpuRead,
  cpu_write: cpuWrite,
  consumer_walk: consumerWalk,
  flush_queue_timeout: flushQueueTimeout,
  set_dma_mask: setDmaMask,
  set_max_seg_size: setMaxSegSize,
  set_seg_boundary: setSegBoundary,
};

/** Whether a file's op names an operation (an own key: "toString" is no op). */
export function isOp(op: unknown): op is Op {
  return typeof op === 'string' && Object.hasOwn(OPS, op);
}

/* The dispatchers take the op apart from the step so that TypeScript pairs each description with
 * its own step type (a correlated union, no cast): called as runOp(step.op, ...step). */

export function runOp<O extends Op>(op: O, r: PathRunner, step: StepOf<O>, i: number): StepResult {
  return OPS[op].run(r, step, i);
}

export function compareOp<O extends Op>(op: O, out: Divergence[], i: number, step: StepOf<O>, l: StepResult, g: StepResult, lr: PathRunner, gr: PathRunner, opts: CheckOptions): void {
  OPS[op].compare(out, i, step, l, g, lr, gr, opts);
}

export function describeOpStep<O extends Op>(op: O, step: StepOf<O>, imported: ImportedFrom | undefined): string {
  return OPS[op].describe(step, imported);
}
