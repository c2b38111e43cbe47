/**
 * The readers of a scenario file's fields (validation.ts and each op's description in ops/):
 * each takes the object, the field and where the object is (`steps[3]`), and returns the value
 * or throws a ScenarioError of one line naming the field (`steps[3].size: ...`).
 */
import { PHYS_LIMIT, overlappingRegion } from '../../vtd/regions.js';
import { hex } from './scenario.js';

export class ScenarioError extends Error {}

export type Obj = Record<string, unknown>;

export const U64_MAX = (1n << 64n) - 1n;
/** the largest single buffer a scenario may map: 1 GiB */
export const MAX_BUFFER = 1 << 30;
/** the largest device or CPU access: 16 MiB */
export const MAX_ACCESS = 1 << 24;
export const MAX_SG_ENTRIES = 1024;

export function fail(where: string, msg: string): never {
  throw new ScenarioError(`${where}: ${msg}`);
}

/** A value as an error line shows it: JSON, cut at 40 characters. */
export function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function onlyKeys(o: Obj, where: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${where}.${k}`, 'unknown field');
}

export function bool(o: Obj, k: string, where: string, dflt?: boolean): boolean {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'boolean') fail(`${where}.${k}`, `expected true or false, got ${show(v)}`);
  return v;
}

export function int(o: Obj, k: string, where: string, min: number, max: number, dflt?: number): number {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${where}.${k}`, `expected an integer, got ${show(v)}`);
  if (v < min || v > max) fail(`${where}.${k}`, `${v} is outside ${min}..${max}`);
  return v;
}

/** A 64-bit quantity: a "0x..." string (the format's way) or a plain non-negative integer. */
export function u64(o: Obj, k: string, where: string, dflt?: bigint): bigint {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  let r: bigint;
  if (typeof v === 'string' && /^0x[0-9a-fA-F]{1,16}$/.test(v)) r = BigInt(v);
  else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) r = BigInt(v);
  else fail(`${where}.${k}`, `expected a hex string like "0x1000", got ${show(v)}`);
  if (r > U64_MAX) fail(`${where}.${k}`, 'does not fit in 64 bits');
  return r;
}

export function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0) fail(`${where}.${k}`, `expected a non-empty string, got ${show(v)}`);
  return v;
}

export function oneOf<T extends string>(o: Obj, k: string, where: string, values: readonly T[], dflt?: T): T {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(`${where}.${k}`, `expected one of ${values.join(', ')}, got ${show(v)}`);
  return v as T;
}

/** A boundary mask must be 2^n - 1 with n >= 12 (iommu_is_span_boundary wants a power of two). */
export function boundaryMask(o: Obj, k: string, where: string, dflt?: bigint): bigint {
  const m = u64(o, k, where, dflt);
  if (m < 0xfffn || ((m + 1n) & m) !== 0n) fail(`${where}.${k}`, `${show(o[k])} is not 2^n-1 with n >= 12`);
  return m;
}

/** A buffer's physical range must lie in the machine and clear of the fixed regions. */
export function physRange(o: Obj, k: string, where: string, len: number): number {
  const p = u64(o, k, where);
  if (p + BigInt(len) > BigInt(PHYS_LIMIT)) fail(`${where}.${k}`, `${show(o[k])}+${len} is beyond physical memory (2^39)`);
  const n = Number(p);
  const r = overlappingRegion(n, len);
  if (r !== undefined) fail(`${where}.${k}`, `${show(o[k])}+${len} overlaps the ${r.name} region`);
  return n;
}

/**
 * A device access's offset from its mapping: any integer (a number, or a "0x..."/"-0x..." string
 * as a probe far past a buffer is easier to read in hex). Whether the address it gives fits in 64
 * bits depends on the IOVA each path returned, so that is checked when the step runs
 * (ops/dma-access.ts); here only exactness bounds it: ±(2^53 - 1), more than any IOVA width apart.
 */
export function offsetOf(o: Obj, where: string): number {
  const v = o['offset'];
  const k = `${where}.offset`;
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string' && /^-?0x[0-9a-fA-F]{1,16}$/.test(v)) n = Number(v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v));
  else fail(k, `expected an integer or a hex string like "0x7f00000000", got ${show(v)}`);
  if (!Number.isSafeInteger(n)) fail(k, `${show(v)} is beyond ±(2^53 - 1), where offsets are exact`);
  return n;
}

/** A hex string field kept as text (normalised to lower case without leading zeros). */
export function hexText(o: Obj, k: string, where: string): string {
  return hex(u64(o, k, where));
}

/** the kernel releases a trace can come from (import-trace) */
export const RELEASES = ['5.10', '6.1'] as const;
