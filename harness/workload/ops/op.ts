/**
 * What one scenario operation is (issue 21: one description per op): its fields in a scenario
 * file, how a file's step is read, how it runs on a path, how it reads in a report and how the two
 * paths' results of it are compared. registry.ts lists them; validation.ts, path-runner.ts,
 * render.ts and checker.ts dispatch through it, so a new op is a Step member (scenario.ts), one
 * description and its line in the registry (and, to be generated, a case in generators.ts).
 */
import type { CheckOptions, Divergence } from '../../check/checker.js';
import type { PathRunner, StepResult } from '../../run/path-runner.js';
import type { GenKind } from '../generators.js';
import type { ImportedFrom, MapKind, Op, StepOf } from '../scenario.js';
import type { StepReader } from './reader.js';

/** What a field of a step holds in the file (DESIGN.md "Scenario format"). */
export type FieldType =
  /** a device's id */
  | 'device'
  /** the name the step gives the mapping it makes */
  | 'new-mapping'
  /** the name of a mapping an earlier step made, of one of `kinds` */
  | 'mapping'
  /** a physical address (hex string): a buffer clear of the fixed regions */
  | 'phys'
  /** a byte count or a number of bits, an integer in a range */
  | 'int'
  /** a byte offset from a mapping: an integer or a signed hex string */
  | 'offset'
  /** a fill byte 0..255 */
  | 'byte'
  /** the CPU that makes the call, 0 by default */
  | 'cpu'
  /** to_device, from_device or bidirectional */
  | 'dir'
  /** correct, i915 or i915-fixed */
  | 'consumer'
  /** both, streaming or coherent; both by default */
  | 'mask-which'
  /** a segment boundary mask, 2^n - 1 as a hex string */
  | 'boundary-mask'
  /** a list of {phys, length} */
  | 'sg'
  /** what the traced kernel returned (import-trace) */
  | 'traced';

export interface FieldSpec {
  readonly type: FieldType;
  /** absent only when false: a default (cpu 0, which both) or nothing (traced) stands in */
  readonly required: boolean;
  /** 'mapping': the kinds of mapping the op may name */
  readonly kinds?: readonly MapKind[];
}

/** Every field of a step type but op, each described. */
export type Fields<S> = { readonly [K in Exclude<keyof S, 'op'>]-?: FieldSpec };

/** The differing results of one step on both paths become divergences in `out`. */
export type CompareFn<S> = (out: Divergence[], i: number, step: S, l: StepResult, g: StepResult, lr: PathRunner, gr: PathRunner, opts: CheckOptions) => void;

export interface OpDescription<O extends Op> {
  readonly op: O;
  readonly fields: Fields<StepOf<O>>;
  /**
   * The kinds of generated step (generators.ts) whose normalisation emits this op. Generation
   * stays there: one generated step makes several ops (a lifecycle makes eight), and the order
   * and weights of its arbitraries fix the replay tokens and shrunk scenarios.
   */
  readonly generatedBy: readonly GenKind[];
  /** The step at `r` read and checked; errors name the field (validation.ts). */
  readonly parse: (r: StepReader) => StepOf<O>;
  /** Step i run on one path: what a driver and a device observe (path-runner.ts). */
  readonly run: (r: PathRunner, step: StepOf<O>, i: number) => StepResult;
  /** The step in one line; an imported scenario's buffers also by their real address (render.ts). */
  readonly describe: (step: StepOf<O>, imported: ImportedFrom | undefined) => string;
  /** The two paths' results of the step compared (checker.ts's compareResults). */
  readonly compare: CompareFn<StepOf<O>>;
}

/** The mapping field of the ops that name one. */
export function mappingField(kinds: readonly MapKind[]): FieldSpec {
  return { type: 'mapping', required: true, kinds };
}

/** the mappings the streaming DMA API takes back (dma_unmap_*, dma_sync_*): not coherent buffers */
export const STREAMING: readonly MapKind[] = ['single', 'sg'];

export const DEVICE: FieldSpec = { type: 'device', required: true };
export const CPU: FieldSpec = { type: 'cpu', required: false };
export const NEW_MAPPING: FieldSpec = { type: 'new-mapping', required: true };
export const INT: FieldSpec = { type: 'int', required: true };
export const BYTE: FieldSpec = { type: 'byte', required: true };
export const PHYS: FieldSpec = { type: 'phys', required: true };
