/**
 * The real-kernel recordings in properties/fixtures/oracle/ (copies of shared/oracle/) and
 * shared/oracle/check.py's rule for comparing a recording's expectations with a step result,
 * written out here independently of the harness's checker.
 */
import { readFileSync } from 'node:fs';

/** One expected step result of a recording: the step index and the fields it must show. */
export interface OracleExpect {
  step: number;
  [field: string]: unknown;
}

/** One trace event as recorded (and as the model's trace is compared with it). */
export interface TraceLine {
  event: string;
  text: string;
}

/** A recorded case: the scenario, each path's expectations and (strict-main) its trace. */
export interface OracleCase {
  name: string;
  source: string;
  scenario: Record<string, unknown>;
  expect: Record<string, OracleExpect[]>;
  trace?: {
    coversSteps: [number, number];
    events: Record<string, TraceLine[]>;
  };
}

export const FIXTURE_NAMES = ['strict-main', 'strict-dmacheck'] as const;

export type FixtureName = (typeof FIXTURE_NAMES)[number];

/** A recorded case, read relative to this folder (never from ../shared). */
export function loadFixture(name: FixtureName): OracleCase {
  return JSON.parse(readFileSync(new URL(`../fixtures/oracle/${name}.json`, import.meta.url), 'utf8')) as OracleCase;
}

/** check.py's norm: 0x-strings become numbers (BigInt here: 64-bit values exceed 2^53). */
function norm(v: unknown): unknown {
  if (typeof v === 'string' && v.toLowerCase().startsWith('0x')) {
    try {
      return BigInt(v);
    } catch {
      return v;
    }
  }
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return v;
}

/**
 * check.py's sub(expected, actual): objects as subsets (every expected key present and equal),
 * lists of equal length compared elementwise, 0x-strings compared as numbers, anything else with
 * ==. Returns null on a match, else where and how it differs.
 */
export function subsetMismatch(expected: unknown, actual: unknown, where = '$'): string | null {
  if (typeof expected === 'object' && expected !== null && !Array.isArray(expected)) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return `${where}: want an object, got ${JSON.stringify(actual)}`;
    const a = actual as Record<string, unknown>;
    for (const [k, v] of Object.entries(expected as Record<string, unknown>)) {
      if (!(k in a)) return `${where}.${k}: missing (want ${JSON.stringify(v)})`;
      const m = subsetMismatch(v, a[k], `${where}.${k}`);
      if (m !== null) return m;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: want a list, got ${JSON.stringify(actual)}`;
    if (expected.length !== actual.length) return `${where}: want ${expected.length} elements, got ${actual.length}`;
    for (let i = 0; i < expected.length; i++) {
      const m = subsetMismatch(expected[i], actual[i], `${where}[${i}]`);
      if (m !== null) return m;
    }
    return null;
  }
  const e = norm(expected);
  const a = norm(actual);
  return e === a ? null : `${where}: want ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

/** check.py's sub as a yes/no: expected is a subset of actual. */
export function sub(expected: unknown, actual: unknown): boolean {
  return subsetMismatch(expected, actual) === null;
}

/** The lines where two traces differ (event or text, or one of them ended), one message each. */
export function traceLineDiffs(want: readonly TraceLine[], got: readonly TraceLine[]): string[] {
  const n = Math.max(want.length, got.length);
  const bad: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = want[i];
    const g = got[i];
    if (w === undefined || g === undefined || w.event !== g.event || w.text !== g.text) {
      bad.push(`line ${i}: want ${w === undefined ? '(none)' : `${w.event}: ${w.text}`}\n          got  ${g === undefined ? '(none)' : `${g.event}: ${g.text}`}`);
    }
  }
  return bad;
}
