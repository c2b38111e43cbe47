/**
 * The real-kernel recordings in properties/fixtures/oracle/ (copies of shared/oracle/) and
 * shared/oracle/check.py's rule for comparing a recording's expectations with a step result,
 * written out here independently of the harness's checker.
 */
import { readFileSync } from 'node:fs';
import { diffArrays } from 'diff';

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

/**
 * The lines where two traces differ (event or text), one message each, the traces aligned by a
 * diff (the diff package's diffArrays): an event missing from or added to the model's trace is one
 * message, not a shift that marks every line after it. Empty when the traces are equal.
 */
export function traceLineDiffs(want: readonly TraceLine[], got: readonly TraceLine[]): string[] {
  const show = (l: TraceLine | undefined): string => (l === undefined ? '(none)' : `${l.event}: ${l.text}`);
  const parts = diffArrays([...want], [...got], { comparator: (a, b) => a.event === b.event && a.text === b.text });
  const bad: string[] = [];
  let w = 0;
  let g = 0;
  // lines removed, then lines added in their place: the same lines changed, paired in order
  let removed: TraceLine[] = [];
  const pair = (added: readonly TraceLine[]): void => {
    for (let j = 0; j < Math.max(removed.length, added.length); j++) {
      const a = removed[j];
      const b = added[j];
      bad.push(`line ${w === g ? w : `${w} (got line ${g})`}: want ${show(a)}\n          got  ${show(b)}`);
      if (a !== undefined) w++;
      if (b !== undefined) g++;
    }
    removed = [];
  };
  for (const p of parts) {
    if (p.removed) {
      pair([]);
      removed = p.value;
    } else if (p.added) pair(p.value);
    else {
      pair([]);
      w += p.count;
      g += p.count;
    }
  }
  pair([]);
  return bad;
}
