/**
 * A scenario file's steps read one by one (validation.ts): the step's object and place, and the
 * readers an op's parse uses -- the plain ones of fields.ts on this step, and those that need the
 * scenario so far (the devices, the CPUs, the mappings earlier steps made).
 */
import { boundaryMask, fail, int, offsetOf, oneOf, physRange, str, u64, type Obj } from '../fields.js';
import type { MapKind, Op } from '../scenario.js';

export class StepReader {
  /** the step's JSON object */
  s: Obj = {};
  /** where it is: `steps[3]` */
  w = '';
  op: Op = 'flush_queue_timeout';
  private readonly mappings = new Map<string, MapKind>();

  constructor(
    private readonly devIds: ReadonlySet<string>,
    private readonly cpus: number,
  ) {}

  /** Move on to the next step. */
  at(s: Obj, w: string, op: Op): void {
    this.s = s;
    this.w = w;
    this.op = op;
  }

  /** `dev`: a device of the scenario */
  dev(): string {
    const d = str(this.s, 'dev', this.w);
    if (!this.devIds.has(d)) fail(`${this.w}.dev`, `no device "${d}"`);
    return d;
  }

  /** `cpu`: one of the platform's CPUs, 0 when absent */
  cpu(): number {
    return int(this.s, 'cpu', this.w, 0, this.cpus - 1, 0);
  }

  /** `as`: a new mapping's name, of the kind the step makes */
  as(kind: MapKind): string {
    const a = str(this.s, 'as', this.w);
    if (this.mappings.has(a)) fail(`${this.w}.as`, `"${a}" is already a mapping name`);
    this.mappings.set(a, kind);
    return a;
  }

  /** `map`: a mapping an earlier step made, of one of the kinds the op takes */
  map(kinds: readonly MapKind[]): string {
    const m = str(this.s, 'map', this.w);
    const k = this.mappings.get(m);
    if (k === undefined) fail(`${this.w}.map`, `no earlier mapping "${m}"`);
    if (!kinds.includes(k)) fail(`${this.w}.map`, `"${m}" is a ${k} mapping; ${this.op} needs ${kinds.join(' or ')}`);
    return m;
  }

  int(k: string, min: number, max: number, dflt?: number): number {
    return int(this.s, k, this.w, min, max, dflt);
  }

  u64(k: string): bigint {
    return u64(this.s, k, this.w);
  }

  oneOf<T extends string>(k: string, values: readonly T[], dflt?: T): T {
    return oneOf(this.s, k, this.w, values, dflt);
  }

  /** a buffer of `len` bytes at the address in field k */
  phys(k: string, len: number): number {
    return physRange(this.s, k, this.w, len);
  }

  offset(): number {
    return offsetOf(this.s, this.w);
  }

  boundaryMask(k: string): bigint {
    return boundaryMask(this.s, k, this.w);
  }
}
